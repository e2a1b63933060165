#include "runtime/cuda/Architectures.h"

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"

using namespace attnc::cuda;

TEST_CASE("one list of architectures, checked and numbered", "[cuda][arch]") {
  CHECK(cuda_architecture_list() == "sm_80, sm_86, sm_89, sm_90 or sm_90a");
  for (std::string_view arch : kCudaArchitectures) CHECK(is_cuda_arch(arch));
  CHECK_THROWS_WITH(check_cuda_arch("sm_75"), Catch::Contains("unknown GPU architecture 'sm_75'") &&
                                                  Catch::Contains("sm_80, sm_86, sm_89, sm_90 or sm_90a"));
  CHECK_THROWS_AS(check_cuda_arch("compute_80"), attnc::RuntimeError);
  CHECK_NOTHROW(check_cuda_arch("sm_90a"));
  CHECK(sm_number("sm_80") == 80);
  CHECK(sm_number("sm_89") == 89);
  CHECK(sm_number("sm_90a") == 90);
}
