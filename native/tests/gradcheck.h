// Finite-difference gradient checking in fp32 with double accumulation.
// Each op's scalar test loss is L = sum_i g_i * out_i with fixed random g (so every output element matters);
// L is evaluated in double from the fp32 outputs. The numeric derivative is the central difference
// (L(x + eps) - L(x - eps)) / (2 eps); it passes when |analytic - numeric| <= atol + rtol * max(|a|, |n|).
// With fp32 ops the central difference carries ~1e-7 * |L| / eps of rounding noise, hence eps ~1e-2..1e-3
// and rtol 1e-2 (stated per test).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"
#include "rng.h"

namespace qtest {

inline std::vector<float> rand_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * qt::rng_uniform(seed, i);
  return v;
}

inline double weighted_sum(const float* out, const std::vector<float>& g) {
  double s = 0;
  for (size_t i = 0; i < g.size(); i++) s += static_cast<double>(out[i]) * g[i];
  return s;
}

struct GradCheckResult {
  double max_abs_err = 0;
  size_t worst = 0;
  double worst_analytic = 0, worst_numeric = 0;
  size_t checked = 0;
};

/** Perturbs x[i] for every i in idx (all when empty) and compares with analytic[i]. */
inline void grad_check(const std::string& what, float* x, const std::vector<float>& analytic,
                       const std::function<double()>& loss, float eps, double rtol, double atol,
                       std::vector<size_t> idx = {}) {
  if (idx.empty())
    for (size_t i = 0; i < analytic.size(); i++) idx.push_back(i);
  for (size_t i : idx) {
    const float saved = x[i];
    x[i] = saved + eps;
    const double lp = loss();
    x[i] = saved - eps;
    const double lm = loss();
    x[i] = saved;
    const double num = (lp - lm) / (2.0 * static_cast<double>(eps));
    const double a = analytic[i];
    const double err = std::fabs(a - num);
    if (!(err <= atol + rtol * std::max(std::fabs(a), std::fabs(num)))) {
      std::ostringstream s;
      s.precision(7);
      s << what << ": gradient mismatch at element " << i << ": analytic " << a << " vs numeric " << num
        << " (eps " << eps << ", rtol " << rtol << ", atol " << atol << ")";
      fail(__FILE__, __LINE__, s.str());
    }
  }
}

}  // namespace qtest
