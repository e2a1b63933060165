#pragma once
// The clock and the statistic every measurement of the suite uses.

#include <chrono>
#include <vector>

namespace attnc::bench {

using Clock = std::chrono::steady_clock;

inline double to_ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The median of `values` (the mean of the middle two for an even count); 0 for none.
double median(std::vector<double> values);

}  // namespace attnc::bench
