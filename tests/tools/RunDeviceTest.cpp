// `attnc run --device cuda`, as a process: without the CUDA driver it fails with exit status 3 and
// says why; with a GPU it agrees with the reference kernel on the CPU. Usage errors of --device.

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "runtime/core/Npy.h"
#include "runtime/core/Tensor.h"
#include "runtime/cuda/CudaDriver.h"

namespace fs = std::filesystem;

namespace {

using Result = attnc_test::AttncResult;

fs::path scratch() {
  fs::path dir = fs::temp_directory_path() / ("attnc-run-device-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

Result run_attnc(const std::string& args) { return attnc_test::run_attnc(args, scratch()); }

// fp16 inputs (the GPU kernel takes fp16 / bf16), written as .npy; returns the common arguments.
std::string write_inputs() {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist;
  for (const char* name : {"q", "k", "v"}) {
    std::vector<float> values(1 * 2 * 40 * 64);
    for (float& x : values) x = dist(rng);
    attnc::write_npy((scratch() / (std::string(name) + ".npy")).string(),
                     attnc::Tensor::from_vector(values, {1, 2, 40, 64}, attnc::DType::F16));
  }
  const std::string dir = scratch().string();
  return "run examples/mistral.attn --mask-mod sliding_window --arg window=16 --q '" + dir + "/q.npy' --k '" + dir +
         "/k.npy' --v '" + dir + "/v.npy'";
}

}  // namespace

TEST_CASE("attnc run --device cuda needs the CUDA driver and says so", "[cli][run][cuda]") {
  const std::string command = write_inputs();
  const std::string out = (scratch() / "out.npy").string();
  CHECK(run_attnc(command + " --device tpu -o '" + out + "'").status == 2);
  CHECK(run_attnc(command + " --device cuda --kernel standard -o '" + out + "'").status == 2);
  if (attnc::cuda::CudaDriver::available()) {
    WARN("this machine has a CUDA driver; checked the GPU run instead of its absence");
    const Result gpu = run_attnc(command + " --device cuda -o '" + out + "'");
    INFO(gpu.err);
    REQUIRE(gpu.status == 0);
    const std::string ref_path = (scratch() / "ref.npy").string();
    REQUIRE(run_attnc(command + " --kernel standard -o '" + ref_path + "'").status == 0);
    const std::vector<float> a = attnc::read_npy(out).to_float_vector(),
                             b = attnc::read_npy(ref_path).to_float_vector();
    REQUIRE(a.size() == b.size());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (a[i] - b[i]), norm += b[i] * b[i];
    CHECK(std::sqrt(diff / norm) < 1e-2);
    return;
  }
  const Result r = run_attnc(command + " --device cuda -o '" + out + "'");
  CHECK(r.status == 3);
  CHECK(r.err.find("no CUDA driver (libcuda.so.1) on this machine") != std::string::npos);
}
