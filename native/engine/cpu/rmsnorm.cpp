// RMSNorm (Zhang & Sennrich 2019) as in Llama: y = x / sqrt(mean(x^2) + eps) * w, computed in fp32 like
// transformers' LlamaRMSNorm. Backward with xhat = x * rstd and g = dy * w:
//   dx = rstd * (g - xhat * mean(g * xhat)),  dw += sum_n dy * xhat.
// add_rmsnorm_forward is a residual add followed by the norm (one op so the GPU can fuse them).
#include <cmath>

#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  // out [N, C]; rstd [N]; inp [N, C]; weight [C]
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = inp + n * C;
      double ss = 0;
      for (int c = 0; c < C; c++) ss += static_cast<double>(x[c]) * x[c];
      const float r = 1.0f / std::sqrt(static_cast<float>(ss / C) + eps);
      rstd[n] = r;
      float* y = out + n * C;
      for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
    }
  });
}

// The residual add and the norm after it (backend.h): by definition the two ops in turn. The CUDA backend runs them
// as one kernel with the same bits; here they stay separate, the reference the fused kernel is checked against.
void add_rmsnorm_forward(float* x_out, float* out, float* rstd, const float* a, const float* b, const float* weight, int N,
                         int C, float eps) {
  // x_out, a, b, out [N, C]; rstd [N]; weight [C]
  add(x_out, a, b, static_cast<size_t>(N) * C);
  rmsnorm_forward(out, rstd, x_out, weight, N, C, eps);
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  // dinp [N, C] +=; dweight [C] += (may be null); dout, inp [N, C]; weight [C]; rstd [N]
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = inp + n * C;
      const float* dy = dout + n * C;
      const float r = rstd[n];
      double dot = 0;  // sum_c (dy * w) * xhat
      for (int c = 0; c < C; c++) dot += static_cast<double>(dy[c] * weight[c]) * (x[c] * r);
      const float m = static_cast<float>(dot / C);
      float* dx = dinp + n * C;
      for (int c = 0; c < C; c++) dx[c] += r * (dy[c] * weight[c] - x[c] * r * m);
    }
  });
  if (dweight)
    for (int n = 0; n < N; n++) {  // serial over rows: fixed summation order
      const float* x = inp + static_cast<size_t>(n) * C;
      const float* dy = dout + static_cast<size_t>(n) * C;
      for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * rstd[n];
    }
}

}  // namespace qt::cpu
