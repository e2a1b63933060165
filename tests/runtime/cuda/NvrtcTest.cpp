// NVRTC, opened at run time: a compile error carries the log, the options and the generated source;
// name expressions give lowered names; unknown architectures are refused; the CUDA driver's absence
// is a clear RuntimeError. (Each family's tests compile its own translation units.) Without
// libnvrtc the NVRTC tests say so (WARN).

#include "runtime/cuda/Nvrtc.h"

#include <string>

#include <catch2/catch.hpp>

#include "runtime/cuda/CudaDriver.h"
#include "tests/support/CudaTesting.h"

using namespace attnc;
using namespace attnc::ir;
using namespace attnc::cuda;
using attnc::test::nvrtc_or_warn;

TEST_CASE("A compile error carries the NVRTC log, the options and the generated source", "[nvrtc][cuda]") {
  if (!nvrtc_or_warn()) return;
  KernelProgram program;
  program.name = "broken.cu";
  program.source = "#include \"attnc_mods.cuh\"\nextern \"C\" __global__ void k() { undefined_thing(); }\n";
  program.headers.push_back({"attnc_mods.cuh", "// generated mods go here\nconstexpr int kMarker = 42;\n", true});
  NvrtcOptions options;
  options.arch = "sm_80";
  try {
    Nvrtc::get().compile(program, options);
    FAIL("the broken program compiled");
  } catch (const NvrtcError& e) {
    CHECK_THAT(e.log, Catch::Contains("undefined_thing"));
    CHECK_THAT(e.log, Catch::Contains("broken.cu"));
    REQUIRE_FALSE(e.options.empty());
    CHECK(e.options.front() == "--gpu-architecture=sm_80");
    CHECK_THAT(e.source, Catch::Contains("undefined_thing"));
    CHECK_THAT(e.source, Catch::Contains("kMarker = 42"));  // the generated header travels too
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("undefined_thing"));
    CHECK_THAT(what, Catch::Contains("--gpu-architecture=sm_80"));
    CHECK_THAT(what, Catch::Contains("kMarker = 42"));
  }
  SECTION("an NvrtcError is a RuntimeError") { CHECK_THROWS_AS(Nvrtc::get().compile(program, options), RuntimeError); }
}

TEST_CASE("Name expressions give the lowered names of templated entry points", "[nvrtc][cuda]") {
  if (!nvrtc_or_warn()) return;
  KernelProgram program;
  program.source = "template <int N> __global__ void scale(float* x) { x[threadIdx.x] *= N; }\n";
  program.name_expressions = {"scale<4>"};
  CompiledKernel kernel = Nvrtc::get().compile(program, NvrtcOptions{});
  REQUIRE(kernel.lowered_names.size() == 1);
  CHECK(kernel.lowered_names[0].first == "scale<4>");
  CHECK_THAT(kernel.lowered_names[0].second, Catch::StartsWith("_Z"));
  CHECK(kernel.ptx.find(kernel.lowered_names[0].second) != std::string::npos);
}

TEST_CASE("NVRTC reports its version and refuses unknown architectures", "[nvrtc][cuda]") {
  if (!nvrtc_or_warn()) return;
  const Nvrtc& nvrtc = Nvrtc::get();
  CHECK(nvrtc.version_numbers().first >= 11);
  CHECK(nvrtc.version() ==
        std::to_string(nvrtc.version_numbers().first) + "." + std::to_string(nvrtc.version_numbers().second));
  NvrtcOptions options;
  options.arch = "compute_80";
  CHECK_THROWS_AS(nvrtc.compile(KernelProgram{}, options), RuntimeError);
}

TEST_CASE("Without libcuda the driver is a clear RuntimeError, and compiling still works", "[cuda][driver]") {
  if (CudaDriver::available()) {
    WARN("this machine has a CUDA driver; the no-driver message was not checked");
    CHECK(CudaDriver::get().device_count() >= 0);
    return;
  }
  CHECK_THROWS_AS(CudaDriver::get(), CudaDriverUnavailable);
  CHECK_THROWS_WITH(CudaDriver::get(), Catch::Contains("no CUDA driver (libcuda.so.1) on this machine"));
  CHECK_THROWS_AS(CudaModule(std::vector<char>{'x'}), RuntimeError);
}
