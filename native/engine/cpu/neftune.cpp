// NEFTune (Jain et al. 2023, arXiv 2310.05914): uniform noise on the input embeddings during training,
// magnitude alpha / sqrt(L * d) with L the sample's true (unpadded) length and d the hidden size, as in the
// paper's reference code (Hugging Face's hook uses the padded length instead). Padding gets no noise.
// There is no backward: the embeddings are frozen and the noise is additive (its gradient is identity).
#include <cmath>

#include "ops.h"
#include "rng.h"

namespace qt::cpu {

void neftune_forward(float* x, const int32_t* lengths, float alpha, uint64_t seed, int B, int T, int C) {
  // x [B, T, C] in place; lengths [B]
  if (alpha == 0.0f) return;
  for (int b = 0; b < B; b++) {
    const int L = lengths[b];
    if (L <= 0) continue;
    const float mag = alpha / std::sqrt(static_cast<float>(L) * static_cast<float>(C));
    for (int t = 0; t < L && t < T; t++) {
      const uint64_t base = (static_cast<uint64_t>(b) * T + t) * C;
      float* row = x + base;
      for (int c = 0; c < C; c++) row[c] += (2.0f * rng_uniform(seed, base + c) - 1.0f) * mag;
    }
  }
}

}  // namespace qt::cpu
