// LoRA (Hu et al. 2021) as PEFT computes it: y += scale * B(A(dropout(x))), scale = alpha / r.
// A [R, C], B [OC, R] are fp32 trainable matrices; the frozen base product is done separately (matmul).
// Dropout is inverted dropout with a counter-based mask (rng.h): element i of the [N, C] input is kept when
// rng_mask_uniform(seed, i) >= p (rng.h: elements 4k .. 4k + 3 share one draw) and then scaled by 1/(1-p); backward
// regenerates the same mask from the seed.
//   forward:  xd = dropout(x); u = xd A^T [N,R] (saved); out += scale * u B^T
//   backward: dB += scale * dout^T u; du = scale * dout B; dA += du^T xd; dx += dropout'(du A)
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops.h"
#include "rng.h"
#include "threadpool.h"

namespace qt::cpu {

static void dropout_apply(float* out, const float* inp, float p, uint64_t seed, size_t n) {
  if (p <= 0.0f) {
    std::memcpy(out, inp, n * sizeof(float));
    return;
  }
  const float keep_scale = 1.0f / (1.0f - p);
  parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) out[i] = rng_mask_uniform(seed, static_cast<uint64_t>(i)) >= p ? inp[i] * keep_scale : 0.0f;
  });
}

void lora_forward(float* out, float* u, float* scratch, const float* inp, const float* A, const float* Bw, float scale,
                  float dropout, uint64_t seed, int N, int C, int OC, int R, DType) {
  // out [N, OC] +=; u [N, R]; scratch [N, C]; inp [N, C]; A [R, C]; Bw [OC, R]
  float* xd = scratch;
  dropout_apply(xd, inp, dropout, seed, static_cast<size_t>(N) * C);
  gemm_nt(u, xd, A, nullptr, N, C, R, false);
  // out += scale * u @ Bw^T, row by row (scale applied to the small [R] vector first: same as PEFT's order up to rounding)
  std::vector<float> us(static_cast<size_t>(N) * R);
  for (size_t i = 0; i < us.size(); i++) us[i] = u[i] * scale;
  gemm_nt(out, us.data(), Bw, nullptr, N, R, OC, true);
}

void lora_backward(float* dinp, float* dA, float* dB, float* scratch, const float* dout, const float* inp,
                   const float* u, const float* A, const float* Bw, float scale, float dropout, uint64_t seed, int N,
                   int C, int OC, int R, DType) {
  // dinp [N, C] += (may be null); dA [R, C] +=; dB [OC, R] +=; scratch [N*C + N*R]
  float* xd = scratch;
  float* du = scratch + static_cast<size_t>(N) * C;
  // dB += scale * dout^T @ u
  std::vector<float> us(static_cast<size_t>(N) * R);
  for (size_t i = 0; i < us.size(); i++) us[i] = u[i] * scale;
  gemm_tn_acc(dB, dout, us.data(), N, R, OC);
  // du = scale * dout @ Bw   [N, R]
  std::fill(du, du + static_cast<size_t>(N) * R, 0.0f);
  gemm_nn_acc(du, dout, Bw, N, R, OC);
  for (size_t i = 0; i < static_cast<size_t>(N) * R; i++) du[i] *= scale;
  // dA += du^T @ xd
  dropout_apply(xd, inp, dropout, seed, static_cast<size_t>(N) * C);
  gemm_tn_acc(dA, du, xd, N, C, R);
  if (!dinp) return;
  // dxd = du @ A, then through the dropout mask
  std::fill(xd, xd + static_cast<size_t>(N) * C, 0.0f);
  gemm_nn_acc(xd, du, A, N, C, R);
  if (dropout > 0.0f) {
    const float keep_scale = 1.0f / (1.0f - dropout);
    for (size_t i = 0; i < static_cast<size_t>(N) * C; i++)
      dinp[i] += rng_mask_uniform(seed, i) >= dropout ? xd[i] * keep_scale : 0.0f;
  } else {
    for (size_t i = 0; i < static_cast<size_t>(N) * C; i++) dinp[i] += xd[i];
  }
}

}  // namespace qt::cpu
