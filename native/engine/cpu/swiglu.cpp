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

// bf16 arrays (backend.h): inputs widened exactly, the fp32 math above, each output rounded once; backward overwrites.
void swiglu_forward_bf16(uint16_t* out, const uint16_t* gate, const uint16_t* up, size_t n) {
  parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float g = bf16_to_f32(gate[i]);
      const float s = 1.0f / (1.0f + std::exp(-g));
      out[i] = f32_to_bf16(g * s * bf16_to_f32(up[i]));
    }
  });
}

void swiglu_backward_bf16(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate, const uint16_t* up,
                          size_t n) {
  parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float g = bf16_to_f32(gate[i]), u = bf16_to_f32(up[i]), d = bf16_to_f32(dout[i]);
      const float s = 1.0f / (1.0f + std::exp(-g));
      dgate[i] = f32_to_bf16(d * u * s * (1.0f + g * (1.0f - s)));
      dup[i] = f32_to_bf16(d * g * s);
    }
  });
}

}  // namespace qt::cpu
