#pragma once
// The JSON report of a bench run (`attnc bench --json FILE`), read by bench/peers/ and kept in
// bench/results/. One object: the run's settings, the BLAS and the kernel it chose, the FMA
// peaks, the ceilings by (S, D), and every case with its times, kept pairs, flops, tile counts and
// its ratios to the references. Numbers that are not finite, and ratios that have no reference,
// are null.

#include <string>

#include "bench/suite/BenchSuite.h"

namespace attnc::bench {

// The report as text (indented, ending in a newline).
std::string bench_json(const BenchConfig& config, const BenchReport& report);

}  // namespace attnc::bench
