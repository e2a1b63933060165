#include "bench/suite/Ceiling.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>

#include "runtime/core/RuntimeError.h"

using namespace attnc;
using namespace attnc::bench;

namespace {

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

CeilingShape small_shape() {
  CeilingShape shape;
  shape.seq = 128;
  shape.head_dim = 32;
  shape.products = 2;
  shape.repeat = 1;
  shape.threads = 1;
  return shape;
}

}  // namespace

TEST_CASE("a ceiling request and a ceiling survive their JSON round trips", "[bench][ceiling]") {
  CeilingShape shape{4096, 128, 8, 5, 2};
  CeilingShape back = parse_ceiling_request(ceiling_request(shape));
  CHECK(back.seq == 4096);
  CHECK(back.head_dim == 128);
  CHECK(back.products == 8);
  CHECK(back.repeat == 5);
  CHECK(back.threads == 2);
  CHECK_THROWS_AS(parse_ceiling_request("{\"seq\": 1}"), RuntimeError);
  CHECK_THROWS_AS(parse_ceiling_request(R"({"seq":0,"head_dim":1,"products":1,"repeat":1,"threads":1})"), RuntimeError);

  Ceiling c;
  c.measured = true;
  c.core = "SkylakeX";
  c.qk_ms = 1.5;
  c.gflops = 90;
  Ceiling d = ceiling_from_json(ceiling_to_json(c));
  CHECK(d.measured);
  CHECK(d.core == "SkylakeX");
  CHECK(d.qk_ms == 1.5);
  CHECK(d.gflops == 90);
  CHECK_THROWS_WITH(ceiling_from_json("OpenBLAS warning: ..."), Catch::Contains("printed no ceiling"));
}

TEST_CASE("the ceiling measured here names the BLAS kernel, or says there is no BLAS", "[bench][ceiling]") {
  Ceiling c = measure_ceiling_here(small_shape());
  if (!have_blas()) {
    CHECK_FALSE(c.measured);
    CHECK_THAT(c.reason, Catch::Contains("without OpenBLAS"));
    return;
  }
  CHECK(c.measured);
  CHECK_FALSE(c.core.empty());
  CHECK(c.qk_ms > 0);
  CHECK(c.pv_ms > 0);
  CHECK(c.gflops > 0);
  CHECK_THAT(blas_config(), Catch::Contains("OpenBLAS"));
}

TEST_CASE("the ceiling is measured in a child process that does not inherit OPENBLAS_CORETYPE", "[bench][ceiling]") {
  if (!have_blas()) {
    WARN("attnc was built without OpenBLAS; the child-process ceiling was not tested");
    return;
  }
  // Prescott is a core every x86-64 OpenBLAS build knows and no machine of today would choose.
  ScopedEnv pinned("OPENBLAS_CORETYPE", "Prescott");
  ScopedEnv l2("OPENBLAS_L2_SIZE", "1024");
  Ceiling c = measure_ceiling_in_child({ATTNC_BINARY, "__sgemm-ceiling"}, small_shape());
  INFO(c.reason);
  REQUIRE(c.measured);
  CHECK_FALSE(c.core.empty());
  CHECK(c.core != "Prescott");
  CHECK(c.gflops > 0);

  SECTION("a command that cannot run, or fails, gives no ceiling and says why") {
    Ceiling missing = measure_ceiling_in_child({"/nonexistent/attnc"}, small_shape());
    CHECK_FALSE(missing.measured);
    CHECK_THAT(missing.reason, Catch::Contains("/nonexistent/attnc"));
    Ceiling failing = measure_ceiling_in_child({"/bin/false"}, small_shape());
    CHECK_FALSE(failing.measured);
    CHECK_THAT(failing.reason, Catch::Contains("exited with status 1"));
  }
}
