// Causal multi-head attention with grouped-query heads and a right-padding mask, FlashAttention-style
// interface: forward keeps only out and the row log-sum-exp (lse), backward recomputes the probabilities
// P = exp(S - lse). Simplification: plain loops, one query row at a time (no tiling).
//   S_ij = q_i . k_j / sqrt(HS) for visible j (j <= pos(i) and j < length), P = softmax_j(S), out_i = sum_j P_ij v_j
//   backward (Dao 2023, FlashAttention-2 §2): D_i = dout_i . out_i, dP_ij = dout_i . v_j, dS_ij = P_ij (dP_ij - D_i),
//   dq_i += scale sum_j dS_ij k_j, dk_j += scale dS_ij q_i, dv_j += P_ij dout_i.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

static inline float dot(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

// Number of keys visible to query i of row b: positions 0 .. min(pos(i), length - 1).
static inline int visible_keys(int i, int Tq, int Tk, int length) { return std::min(Tk - Tq + i + 1, length); }

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* lengths,
                       int B, int Tq, int Tk, int NH, int NKV, int HS, DType) {
  // out [B, Tq, NH, HS]; lse [B, NH, Tq]; q [B, Tq, NH, HS]; k, v [B, Tk, NKV, HS]; lengths [B] or null
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int group = NH / NKV;
  parallel_for(static_cast<int64_t>(B) * NH * Tq, 8, [&](int64_t r0, int64_t r1) {
    std::vector<float> p(static_cast<size_t>(Tk));
    for (int64_t r = r0; r < r1; r++) {
      const int i = static_cast<int>(r % Tq), h = static_cast<int>((r / Tq) % NH), b = static_cast<int>(r / Tq / NH);
      const int kh = h / group;
      const int length = lengths ? lengths[b] : Tk;
      const int nk = visible_keys(i, Tq, Tk, length);
      const float* qi = q + ((static_cast<size_t>(b) * Tq + i) * NH + h) * HS;
      float* oi = out + ((static_cast<size_t>(b) * Tq + i) * NH + h) * HS;
      float* lse_i = lse + (static_cast<size_t>(b) * NH + h) * Tq + i;
      for (int d = 0; d < HS; d++) oi[d] = 0;
      if (nk <= 0) {  // nothing visible (empty row): output 0
        *lse_i = -std::numeric_limits<float>::infinity();
        continue;
      }
      float mx = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < nk; j++) {
        const float* kj = k + ((static_cast<size_t>(b) * Tk + j) * NKV + kh) * HS;
        p[static_cast<size_t>(j)] = dot(qi, kj, HS) * scale;
        mx = std::max(mx, p[static_cast<size_t>(j)]);
      }
      double sum = 0;
      for (int j = 0; j < nk; j++) {
        p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - mx);
        sum += p[static_cast<size_t>(j)];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int j = 0; j < nk; j++) {
        const float pj = p[static_cast<size_t>(j)] * inv;
        const float* vj = v + ((static_cast<size_t>(b) * Tk + j) * NKV + kh) * HS;
        for (int d = 0; d < HS; d++) oi[d] += pj * vj[d];
      }
      *lse_i = mx + static_cast<float>(std::log(sum));
    }
  });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const int32_t* lengths, int B, int Tq,
                        int Tk, int NH, int NKV, int HS, DType) {
  // dq [B, Tq, NH, HS] +=; dk, dv [B, Tk, NKV, HS] +=; other shapes as in forward.
  // Threads over (b, kv head): every dk/dv row is written by one thread, in a fixed order.
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int group = NH / NKV;
  parallel_for(static_cast<int64_t>(B) * NKV, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; w++) {
      const int b = static_cast<int>(w / NKV), kh = static_cast<int>(w % NKV);
      const int length = lengths ? lengths[b] : Tk;
      for (int h = kh * group; h < (kh + 1) * group; h++)
        for (int i = 0; i < Tq; i++) {
          const int nk = visible_keys(i, Tq, Tk, length);
          if (nk <= 0) continue;
          const size_t qo = ((static_cast<size_t>(b) * Tq + i) * NH + h) * HS;
          const float* qi = q + qo;
          const float* doi = dout + qo;
          const float* oi = out + qo;
          float* dqi = dq + qo;
          const float l = lse[(static_cast<size_t>(b) * NH + h) * Tq + i];
          const float D = dot(doi, oi, HS);
          for (int j = 0; j < nk; j++) {
            const size_t ko = ((static_cast<size_t>(b) * Tk + j) * NKV + kh) * HS;
            const float pj = std::exp(dot(qi, k + ko, HS) * scale - l);
            const float dp = dot(doi, v + ko, HS);
            const float ds = pj * (dp - D) * scale;
            const float* kj = k + ko;
            float* dkj = dk + ko;
            float* dvj = dv + ko;
            for (int d = 0; d < HS; d++) {
              dqi[d] += ds * kj[d];
              dkj[d] += ds * qi[d];
              dvj[d] += pj * doi[d];
            }
          }
        }
    }
  });
}

}  // namespace qt::cpu
