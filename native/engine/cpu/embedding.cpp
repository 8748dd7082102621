// Token embedding lookup (forward) and its scatter-add backward. The table stays in its stored dtype
// (BF16/F16/F32); rows are converted to fp32 as they are read. Reference: llm.c encoder_forward/backward.
#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

void embedding_forward(float* out, const int32_t* ids, const Weight& wte, int N, int C) {
  // out [N, C]; ids [N]; wte [V, C]
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) dequantize_range(out + n * C, wte, static_cast<int64_t>(ids[n]) * C, C);
  });
}

void embedding_backward(float* dwte, const float* dout, const int32_t* ids, int N, int C) {
  // dwte [V, C] += scatter of dout [N, C]; serial over n so repeated ids add in a fixed order
  for (int n = 0; n < N; n++) {
    float* d = dwte + static_cast<size_t>(ids[n]) * C;
    const float* g = dout + static_cast<size_t>(n) * C;
    for (int c = 0; c < C; c++) d[c] += g[c];
  }
}

}  // namespace qt::cpu
