// Softmax cross-entropy over the vocabulary for each row, skipping rows whose target is negative
// (the -100 labels of padding and untrained tokens). The log-sum-exp is accumulated in double.
// The mean over counted tokens is taken by the caller (dloss = 1 / count for the backward).
#include <algorithm>
#include <cmath>

#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

static double row_lse(const float* x, int V, float* mx_out) {
  float mx = x[0];
  for (int j = 1; j < V; j++) mx = std::max(mx, x[j]);
  double s = 0;
  for (int j = 0; j < V; j++) s += std::exp(static_cast<double>(x[j] - mx));
  *mx_out = mx;
  return mx + std::log(s);
}

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int N, int V) {
  // losses [N]; logits [N, V]; targets [N]
  parallel_for(N, 4, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      if (targets[n] < 0) {
        losses[n] = 0.0f;
        continue;
      }
      const float* x = logits + n * V;
      float mx;
      losses[n] = static_cast<float>(row_lse(x, V, &mx) - x[targets[n]]);
    }
  });
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, float dloss, int N, int V) {
  // dlogits [N, V] = (overwritten, may alias logits); logits [N, V]; targets [N]
  parallel_for(N, 4, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      float* d = dlogits + n * V;
      const int32_t t = targets[n];
      if (t < 0) {
        std::fill(d, d + V, 0.0f);
        continue;
      }
      const float* x = logits + n * V;
      float mx;
      const double lse = row_lse(x, V, &mx);
      for (int j = 0; j < V; j++) d[j] = static_cast<float>(std::exp(static_cast<double>(x[j]) - lse)) * dloss;
      d[t] -= dloss;
    }
  });
}

void cross_entropy_fused(float* losses, float* dlogits, const float* logits, const int32_t* targets, float dloss, int N,
                         int V) {
  cross_entropy_forward(losses, logits, targets, N, V);  // reads the logits before the (possibly in-place) gradient
  cross_entropy_backward(dlogits, logits, targets, dloss, N, V);
}

}  // namespace qt::cpu
