// Host-side sampling (see sampling.h), matching transformers' RepetitionPenaltyLogitsProcessor,
// TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper followed by a multinomial draw.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "rng.h"
#include "sampling.h"

namespace qt {

int32_t sample_next(std::vector<float>& logits, const SamplingConfig& s, const std::vector<int32_t>& history,
                    uint64_t seed, uint64_t step) {
  const int V = static_cast<int>(logits.size());
  const float ninf = -std::numeric_limits<float>::infinity();
  if (s.repetition_penalty != 1.0f) {
    std::vector<char> seen(static_cast<size_t>(V), 0);
    for (int32_t id : history) {
      if (id < 0 || id >= V || seen[static_cast<size_t>(id)]) continue;
      seen[static_cast<size_t>(id)] = 1;
      float& x = logits[static_cast<size_t>(id)];
      x = x < 0 ? x * s.repetition_penalty : x / s.repetition_penalty;
    }
  }
  if (s.temperature <= 0.0f)  // greedy: the first maximum, as torch.argmax
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  for (float& x : logits) x /= s.temperature;
  if (s.top_k > 0 && s.top_k < V) {
    std::vector<float> sorted(logits);
    std::nth_element(sorted.begin(), sorted.begin() + (s.top_k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[static_cast<size_t>(s.top_k - 1)];
    for (float& x : logits)
      if (x < kth) x = ninf;
  }
  if (s.top_p < 1.0f) {
    // ascending order; remove while the cumulative probability (from the smallest) is <= 1 - top_p
    std::vector<int> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[static_cast<size_t>(a)] < logits[static_cast<size_t>(b)]; });
    const float mx = logits[static_cast<size_t>(order.back())];
    double z = 0;
    for (float x : logits) z += std::exp(static_cast<double>(x - mx));
    double cum = 0;
    for (int i = 0; i < V - 1; i++) {  // the last (most likely) token is always kept
      float& x = logits[static_cast<size_t>(order[static_cast<size_t>(i)])];
      cum += std::exp(static_cast<double>(x - mx)) / z;
      if (cum <= 1.0 - s.top_p) x = ninf;
      else break;
    }
  }
  const float mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (float x : logits) z += std::exp(static_cast<double>(x - mx));
  const double u = rng_uniform_double(seed, step) * z;
  double cum = 0;
  int32_t last = 0;
  for (int i = 0; i < V; i++) {
    if (logits[static_cast<size_t>(i)] == ninf) continue;
    last = i;
    cum += std::exp(static_cast<double>(logits[static_cast<size_t>(i)] - mx));
    if (u < cum) return i;
  }
  return last;  // rounding at the very end of the distribution
}

}  // namespace qt
