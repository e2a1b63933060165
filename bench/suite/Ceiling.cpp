#include "bench/suite/Ceiling.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/suite/BenchInputs.h"
#include "bench/suite/Timing.h"
#include "runtime/core/RuntimeError.h"

#if ATTNC_HAVE_OPENBLAS
#include <cblas.h>
#endif

extern char** environ;

namespace attnc::bench {

using nlohmann::json;

bool have_blas() {
#if ATTNC_HAVE_OPENBLAS
  return true;
#else
  return false;
#endif
}

std::string blas_config() {
#if ATTNC_HAVE_OPENBLAS
  return openblas_get_config();
#else
  return "none (attnc was built without OpenBLAS: install libopenblas-dev and reconfigure)";
#endif
}

Ceiling measure_ceiling_here([[maybe_unused]] const CeilingShape& shape) {
  Ceiling ceiling;
#if ATTNC_HAVE_OPENBLAS
  openblas_set_num_threads(shape.threads);
  const int seq = shape.seq, head_dim = shape.head_dim;
  const int64_t s = seq, d = head_dim;
  Tensor a = make_input(DType::F32, {s, d}, 101), b = make_input(DType::F32, {s, d}, 102);
  Tensor v = make_input(DType::F32, {s, d}, 103);
  std::vector<float> scores(size_t(s * s)), out(size_t(s * d));
  const float* pa = static_cast<const float*>(a.data());
  const float* pb = static_cast<const float*>(b.data());
  const float* pv = static_cast<const float*>(v.data());
  // One product per head, as the kernel does B * H of them, so a timed run lasts about as long as
  // the kernel's and a moment of noise on a shared machine weighs the same on both.
  auto qk = [&] {
    for (int i = 0; i < shape.products; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seq, seq, head_dim, 1.0f, pa, head_dim, pb, head_dim, 0.0f,
                  scores.data(), seq);
    }
  };
  auto pv_product = [&] {
    for (int i = 0; i < shape.products; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seq, head_dim, seq, 1.0f, scores.data(), seq, pv, head_dim,
                  0.0f, out.data(), head_dim);
    }
  };
  auto time_median = [&](auto&& product) {
    product();  // warm-up: thread start, page faults
    std::vector<double> times;
    for (int r = 0; r < shape.repeat; ++r) {
      Clock::time_point start = Clock::now();
      product();
      times.push_back(to_ms(Clock::now() - start));
    }
    return median(times);
  };
  ceiling.qk_ms = time_median(qk) / shape.products;
  ceiling.pv_ms = time_median(pv_product) / shape.products;
  double flops = 2.0 * double(s) * double(s) * double(d);
  ceiling.qk_gflops = flops / ceiling.qk_ms * 1e-6;
  ceiling.pv_gflops = flops / ceiling.pv_ms * 1e-6;
  ceiling.gflops = 2 * flops / (ceiling.qk_ms + ceiling.pv_ms) * 1e-6;
  ceiling.core = openblas_get_corename();
  ceiling.measured = true;
#else
  ceiling.reason = blas_config();
#endif
  return ceiling;
}

namespace {

// Reads everything `fd` delivers until end of file.
std::string read_all(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

bool is_override(const char* variable) {
  for (const char* name : kBlasOverrides) {
    size_t length = std::strlen(name);
    if (std::strncmp(variable, name, length) == 0 && variable[length] == '=') return true;
  }
  return false;
}

}  // namespace

Ceiling measure_ceiling_in_child(const std::vector<std::string>& command, const CeilingShape& shape) {
  Ceiling failed;
  if (command.empty()) {
    failed.reason = "no command to measure the ceiling with";
    return failed;
  }
  std::vector<std::string> args = command;
  args.push_back(ceiling_request(shape));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    if (!is_override(*variable)) envp.push_back(*variable);
  }
  envp.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    failed.reason = fmt::format("cannot make a pipe: {}", std::strerror(errno));
    return failed;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  pid_t pid = 0;
  int spawned = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    failed.reason = fmt::format("cannot start '{}': {}", command[0], std::strerror(spawned));
    return failed;
  }
  std::string output = read_all(pipe_fds[0]);
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    failed.reason = WIFEXITED(status) ? fmt::format("'{}' exited with status {}", command[0], WEXITSTATUS(status))
                                      : fmt::format("'{}' was killed by signal {}", command[0], WTERMSIG(status));
    return failed;
  }
  try {
    return ceiling_from_json(output);
  } catch (const RuntimeError& e) {
    failed.reason = e.what();
    return failed;
  }
}

std::string ceiling_request(const CeilingShape& shape) {
  return json{{"seq", shape.seq},
              {"head_dim", shape.head_dim},
              {"products", shape.products},
              {"repeat", shape.repeat},
              {"threads", shape.threads}}
      .dump();
}

CeilingShape parse_ceiling_request(std::string_view text) {
  try {
    json request = json::parse(text);
    CeilingShape shape;
    shape.seq = request.at("seq").get<int>();
    shape.head_dim = request.at("head_dim").get<int>();
    shape.products = request.at("products").get<int>();
    shape.repeat = request.at("repeat").get<int>();
    shape.threads = request.at("threads").get<int>();
    if (shape.seq <= 0 || shape.head_dim <= 0 || shape.products <= 0 || shape.repeat <= 0 || shape.threads <= 0) {
      throw RuntimeError("every size must be positive");
    }
    return shape;
  } catch (const json::exception& e) {
    throw RuntimeError(fmt::format("not a ceiling request: {}", e.what()));
  }
}

std::string ceiling_to_json(const Ceiling& c) {
  return json{{"measured", c.measured}, {"reason", c.reason},       {"core", c.core},           {"qk_ms", c.qk_ms},
              {"pv_ms", c.pv_ms},       {"qk_gflops", c.qk_gflops}, {"pv_gflops", c.pv_gflops}, {"gflops", c.gflops}}
      .dump();
}

Ceiling ceiling_from_json(std::string_view text) {
  try {
    json j = json::parse(text);
    Ceiling c;
    c.measured = j.at("measured").get<bool>();
    c.reason = j.at("reason").get<std::string>();
    c.core = j.at("core").get<std::string>();
    c.qk_ms = j.at("qk_ms").get<double>();
    c.pv_ms = j.at("pv_ms").get<double>();
    c.qk_gflops = j.at("qk_gflops").get<double>();
    c.pv_gflops = j.at("pv_gflops").get<double>();
    c.gflops = j.at("gflops").get<double>();
    return c;
  } catch (const json::exception& e) {
    std::string shown(text.substr(0, 200));
    throw RuntimeError(fmt::format("the ceiling's child process printed no ceiling ({}): '{}'", e.what(), shown));
  }
}

}  // namespace attnc::bench
