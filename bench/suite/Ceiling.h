#pragma once
// The sgemm ceiling: how fast this machine's best BLAS multiplies matrices of the shapes of the
// flash kernel's two products, Q.K^T ((S x D) . (D x S)) and P.V ((S x S) . (S x D)), each B * H
// times in a row with the kernel's threads. A case's GFLOP/s over the ceiling's says how close the
// kernel comes to dense linear algebra on the same cores.
//
// "Best" needs care: OpenBLAS picks its kernel once, when the library is loaded, and honours
// OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) from the environment then. A machine whose environment
// pins an older core (OPENBLAS_CORETYPE=Haswell on an AVX-512 machine) would give a ceiling the
// kernel beats. So the ceiling is measured in a child process started without those variables:
// measure_ceiling_in_child runs a command (attnc's hidden `__sgemm-ceiling`) with them removed from
// its environment, and the child reports the kernel OpenBLAS chose (openblas_get_corename()). A
// fresh process rather than a second copy of the library (dlmopen) because a new link namespace
// also loads a second C library, which is fragile; a process costs a few milliseconds per (S, D).

#include <string>
#include <string_view>
#include <vector>

namespace attnc::bench {

// One ceiling measurement: the shape of the kernel's products and how to time them.
struct CeilingShape {
  int seq = 1024, head_dim = 64;
  int products = 8;  // B * H: each product runs this many times per timed run
  int repeat = 3;    // timed runs (after one warm-up); the median is reported
  int threads = 1;   // OpenBLAS threads
};

struct Ceiling {
  bool measured = false;
  std::string reason;                               // when not measured: why
  std::string core;                                 // the kernel OpenBLAS chose (openblas_get_corename())
  double qk_ms = 0, pv_ms = 0;                      // per product
  double qk_gflops = 0, pv_gflops = 0, gflops = 0;  // gflops: both products' flops over both times
};

// The environment variables that make OpenBLAS choose a kernel other than the machine's best,
// removed from the child's environment.
inline constexpr const char* kBlasOverrides[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};

// Whether attnc was built with OpenBLAS.
bool have_blas();
// openblas_get_config() (version and build), or why there is no BLAS.
std::string blas_config();

// Measures in this process, with the kernel OpenBLAS chose when it was loaded. Without OpenBLAS,
// measured is false and reason says so.
Ceiling measure_ceiling_here(const CeilingShape& shape);

// Measures in a child process: `command` (a program and its first arguments) followed by one
// argument, ceiling_request(shape), run with kBlasOverrides removed from its environment; the
// child prints ceiling_to_json(measure_ceiling_here(parse_ceiling_request(argument))) on standard
// output. When it cannot be started, fails or prints something else, measured is false and reason
// says what happened.
Ceiling measure_ceiling_in_child(const std::vector<std::string>& command, const CeilingShape& shape);

// The child's side of the exchange, as JSON text. parse_ceiling_request and ceiling_from_json
// throw RuntimeError for text they did not write.
std::string ceiling_request(const CeilingShape& shape);
CeilingShape parse_ceiling_request(std::string_view text);
std::string ceiling_to_json(const Ceiling& ceiling);
Ceiling ceiling_from_json(std::string_view text);

}  // namespace attnc::bench
