// SwiGLU MLP activation (Shazeer 2020) as in Llama: h = silu(gate) * up, silu(x) = x * sigmoid(x).
// d silu / dx = s * (1 + x * (1 - s)) with s = sigmoid(x).
#include <cmath>

#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
  // out, gate, up [n]
  parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float g = gate[i];
      const float s = 1.0f / (1.0f + std::exp(-g));
      out[i] = g * s * up[i];
    }
  });
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n) {
  // dgate, dup [n] +=
  parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float g = gate[i];
      const float s = 1.0f / (1.0f + std::exp(-g));
      dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
      dup[i] += dout[i] * g * s;
    }
  });
}

}  // namespace qt::cpu
