// Rotary position embeddings (Su et al. 2021) in transformers' Llama layout ("rotate_half": the first and
// second halves of each head are the pair), with HF's inverse frequencies: theta^(-2i/HS), rescaled for
// rope_scaling "linear" (divide by factor) and "llama3" (Llama 3.1: long wavelengths / factor, short kept,
// smooth blend between; transformers' _compute_llama3_parameters). Angles are pos * inv_freq in fp32.
#include <cmath>

#include "engine.h"
#include "ops.h"
#include "threadpool.h"

namespace qt {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; i++)
    inv[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(static_cast<double>(c.rope_theta),
                                                                     static_cast<double>(static_cast<float>(2 * i) / c.head_dim)));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    for (float& f : inv) f /= s.factor;
  } else if (s.type == "llama3") {
    const double old_len = s.original_max_position;
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * 3.14159265358979323846 / f;
      if (wavelen < high_wavelen) continue;  // high frequency: unchanged
      if (wavelen > low_wavelen) {           // low frequency: scaled
        f = static_cast<float>(f / s.factor);
        continue;
      }
      const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = static_cast<float>((1.0 - smooth) * f / s.factor + smooth * f);
    }
  }
  return inv;
}

namespace cpu {

// Applies the rotation (sign = +1) or its transpose (sign = -1) to every head vector.
static void rope_apply(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0,
                       float sign) {
  // out, inp [B, T, H, HS]
  const int half = HS / 2;
  parallel_for(T, 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int64_t t = t0; t < t1; t++) {
      const float pos = static_cast<float>(pos0 + t);
      for (int i = 0; i < half; i++) {
        const float angle = pos * inv_freq[i];
        cs[static_cast<size_t>(i)] = std::cos(angle);
        sn[static_cast<size_t>(i)] = sign * std::sin(angle);
      }
      for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
          const size_t off = ((static_cast<size_t>(b) * T + t) * H + h) * HS;
          const float* x = inp + off;
          float* y = out + off;
          for (int i = 0; i < half; i++) {
            const float x1 = x[i], x2 = x[i + half];
            const float c = cs[static_cast<size_t>(i)], s = sn[static_cast<size_t>(i)];
            y[i] = x1 * c - x2 * s;         // out = x * cos + rotate_half(x) * sin
            y[i + half] = x2 * c + x1 * s;  // rotate_half(x) = [-x2, x1]
          }
        }
    }
  });
}

void rope_forward(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0) {
  rope_apply(out, inp, inv_freq, B, T, H, HS, pos0, 1.0f);
}

// q and k of one attention layer (backend.h): the two rotations in turn, in place (the GPU runs them as one launch).
void rope_forward_qk(float* q, float* k, const float* inv_freq, int B, int T, int NH, int NKV, int HS, int pos0) {
  // q [B, T, NH, HS]; k [B, T, NKV, HS]
  rope_forward(q, q, inv_freq, B, T, NH, HS, pos0);
  rope_forward(k, k, inv_freq, B, T, NKV, HS, pos0);
}

void rope_backward(float* dinp, const float* dout, const float* inv_freq, int B, int T, int H, int HS, int pos0) {
  rope_apply(dinp, dout, inv_freq, B, T, H, HS, pos0, -1.0f);  // rotation matrices are orthogonal: R^T = R(-angle)
}

}  // namespace cpu
}  // namespace qt
