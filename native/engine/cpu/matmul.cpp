// Linear layers on the CPU: out = inp @ w^T + bias and its backward. Frozen NF4/16-bit weights are first
// dequantized to a temporary fp32 copy (what bitsandbytes does in bf16 for QLoRA), then plain fp32 GEMMs
// run on the thread pool. Each output element is one dot product in a fixed order, so the result does not
// depend on the number of threads. Reference: llm.c matmul_forward / matmul_backward.
#include <algorithm>
#include <string>
#include <vector>

#include "engine.h"
#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

// Dot product with 8 independent accumulators (lets the compiler vectorise without -ffast-math).
static inline float dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void gemm_nt(float* out, const float* inp, const float* w, const float* bias, int N, int C, int OC, bool accumulate) {
  // out [N, OC]; inp [N, C]; w [OC, C]; threads over blocks of output features
  const int64_t grain = std::max<int64_t>(1, 32768 / (static_cast<int64_t>(N) * C + 1));
  parallel_for(OC, grain, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
      const float* wr = w + o * C;
      const float b = bias ? bias[o] : 0.0f;
      for (int n = 0; n < N; n++) {
        float v = dot(inp + static_cast<size_t>(n) * C, wr, C) + b;
        float& dst = out[static_cast<size_t>(n) * OC + o];
        dst = accumulate ? dst + v : v;
      }
    }
  });
}

void gemm_nn_acc(float* dinp, const float* dout, const float* w, int N, int C, int OC) {
  // dinp [N, C] += dout [N, OC] @ w [OC, C]; threads over rows n
  parallel_for(N, 4, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      float* di = dinp + n * C;
      const float* d = dout + n * OC;
      for (int o = 0; o < OC; o++) {
        const float g = d[o];
        if (g == 0.0f) continue;
        const float* wr = w + static_cast<size_t>(o) * C;
        for (int c = 0; c < C; c++) di[c] += g * wr[c];
      }
    }
  });
}

void gemm_tn_acc(float* dw, const float* dout, const float* inp, int N, int C, int OC) {
  // dw [OC, C] += dout [N, OC]^T @ inp [N, C]; threads over output features o
  parallel_for(OC, 4, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
      float* dwr = dw + o * C;
      for (int n = 0; n < N; n++) {
        const float g = dout[static_cast<size_t>(n) * OC + o];
        if (g == 0.0f) continue;
        const float* x = inp + static_cast<size_t>(n) * C;
        for (int c = 0; c < C; c++) dwr[c] += g * x[c];
      }
    }
  });
}

// fp32 view of a weight: the weight itself when F32, else a dequantized copy in `tmp`.
static const float* fp32_weight(const Weight& w, std::vector<float>& tmp) {
  if (w.dtype == DType::F32) return static_cast<const float*>(w.data);
  tmp.resize(static_cast<size_t>(w.rows * w.cols));
  dequantize(tmp.data(), w);
  return tmp.data();
}

void matmul_forward(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC) {
  // out [N, OC]; inp [N, C]; w [OC, C]; bias [OC] or null
  std::vector<float> tmp;
  gemm_nt(out, inp, fp32_weight(w, tmp), bias, N, C, OC, false);
}

void matmul_forward_many(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases, int count,
                         int N, int C) {
  for (int i = 0; i < count; i++) matmul_forward(outs[i], inp, *ws[i], biases[i], N, C, static_cast<int>(ws[i]->rows));
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const Weight& w,
                     int N, int C, int OC) {
  // dinp [N, C] += dout @ w; dweight [OC, C] += dout^T @ inp; dbias [OC] += column sums of dout
  if (dinp) {
    std::vector<float> tmp;
    gemm_nn_acc(dinp, dout, fp32_weight(w, tmp), N, C, OC);
  }
  if (dweight && w.dtype == DType::F32) gemm_tn_acc(dweight, dout, inp, N, C, OC);
  if (dbias)
    for (int o = 0; o < OC; o++) {
      float s = 0;
      for (int n = 0; n < N; n++) s += dout[static_cast<size_t>(n) * OC + o];
      dbias[o] += s;
    }
}

// ---- bf16 activations (backend.h): widened to fp32, the fp32 products above, outputs rounded to nearest even ----

namespace {

void check_act(DType t, const char* what) {
  if (t != DType::F32 && t != DType::BF16)
    QT_FAIL(ErrorCode::Internal, std::string(what) + ": activations are F32 or BF16, not " + dtype_name(t));
}

// fp32 view of n activations of type t: the array itself, or a widened copy in tmp
const float* widened(const void* x, DType t, size_t n, std::vector<float>& tmp) {
  if (t == DType::F32) return static_cast<const float*>(x);
  tmp.resize(n);
  from_bf16(tmp.data(), static_cast<const uint16_t*>(x), n);
  return tmp.data();
}

}  // namespace

void matmul_forward_t(void* out, DType out_t, const void* inp, DType inp_t, const Weight& w, int N, int C, int OC) {
  check_act(out_t, "matmul_forward_t");
  check_act(inp_t, "matmul_forward_t");
  std::vector<float> xin, res;
  const float* x = widened(inp, inp_t, static_cast<size_t>(N) * C, xin);
  if (out_t == DType::F32) return matmul_forward(static_cast<float*>(out), x, w, nullptr, N, C, OC);
  res.resize(static_cast<size_t>(N) * OC);
  matmul_forward(res.data(), x, w, nullptr, N, C, OC);
  to_bf16(static_cast<uint16_t*>(out), res.data(), res.size());
}

void matmul_backward_t(void* dinp, DType dinp_t, bool accumulate, const void* dout, DType dout_t, const Weight& w, int N,
                       int C, int OC) {
  check_act(dinp_t, "matmul_backward_t");
  check_act(dout_t, "matmul_backward_t");
  if (dinp_t == DType::BF16 && accumulate) QT_FAIL(ErrorCode::Internal, "matmul_backward_t: a bf16 dinp cannot accumulate");
  std::vector<float> g, res;
  const float* d = widened(dout, dout_t, static_cast<size_t>(N) * OC, g);
  const size_t n = static_cast<size_t>(N) * C;
  if (dinp_t == DType::F32) {
    float* di = static_cast<float*>(dinp);
    if (!accumulate) std::fill(di, di + n, 0.0f);
    return matmul_backward(di, nullptr, nullptr, d, nullptr, w, N, C, OC);
  }
  res.assign(n, 0.0f);
  matmul_backward(res.data(), nullptr, nullptr, d, nullptr, w, N, C, OC);
  to_bf16(static_cast<uint16_t*>(dinp), res.data(), n);
}

}  // namespace qt::cpu
