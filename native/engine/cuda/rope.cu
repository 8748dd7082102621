// RoPE on the GPU (cpu/rope.cpp): HF's rotate_half layout, angle = (pos0 + t) * inv_freq[i] in fp32, one thread
// per rotated pair (decode), or per pair index of a row looping over its heads (32 rows or more). Backward applies
// the transposed rotation (angle -> -angle). In place is safe: each thread reads its pair before writing it.
// rope_forward_qk rotates a layer's queries and keys in one launch (decode: one kernel fewer per layer), each pair with
// the same math as rope_forward.
#include "ops.cuh"

namespace qt::cuda {

namespace {

// Rotates pair k (< B*T*H*HS/2 < 2^31, check_pairs) of x [B, T, H, HS] into out: every RoPE kernel's per-element math,
// in one place. The index arithmetic is 32-bit: a 64-bit division by a run-time divisor costs several times more
// instructions, and with three per pair they, not memory, bounded the kernel (run 15: 178 us per 8 x 1024 call).
__device__ __forceinline__ void rope_pair(float* out, const float* inp, const float* inv_freq, uint32_t k, int T, int H, int HS,
                                          int pos0, float sign) {
  const uint32_t half = static_cast<uint32_t>(HS / 2);
  const int i = static_cast<int>(k % half);
  const uint32_t head = k / half;  // (b*T + t)*H + h
  const int t = static_cast<int>((head / static_cast<uint32_t>(H)) % static_cast<uint32_t>(T));
  const float angle = __fmul_rn(static_cast<float>(pos0 + t), inv_freq[i]);
  float sn, cs;
  sincosf(angle, &sn, &cs);
  sn *= sign;
  const float* x = inp + static_cast<size_t>(head) * HS;
  float* y = out + static_cast<size_t>(head) * HS;
  const float x1 = x[i], x2 = x[i + half];
  y[i] = __fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, sn));         // out = x * cos + rotate_half(x) * sin
  y[i + half] = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sn));  // rotate_half(x) = [-x2, x1]
}

__global__ void rope_kernel(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0, float sign) {
  const uint32_t total = static_cast<uint32_t>(B) * T * H * (HS / 2);
  for (uint32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < total; k += gridDim.x * blockDim.x)
    rope_pair(out, inp, inv_freq, k, T, H, HS, pos0, sign);
}

// Many rows (training, prefill): a thread per (row, pair i) rotates pair i of every head of q (then of k): the angle,
// which depends on t and i only, and its sincosf once instead of once per head (40 times fewer for Llama-3-8B's q + k;
// run 19: 146 us per 8 x 1024 rope_forward_qk against ~76 us of memory traffic). The same math per element as
// rope_pair, so the same bits; a warp's threads touch consecutive pairs of a head (coalesced).
__global__ void rope_rows_kernel(float* qo, const float* qi, int NH, float* ko, const float* ki, int NKV, const float* inv_freq,
                                 uint32_t rows, int T, int HS, int pos0, float sign) {
  const uint32_t half = static_cast<uint32_t>(HS / 2), total = rows * half;
  for (uint32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < total; k += gridDim.x * blockDim.x) {
    const int i = static_cast<int>(k % half);
    const uint32_t row = k / half;  // b*T + t
    const int t = static_cast<int>(row % static_cast<uint32_t>(T));
    const float angle = __fmul_rn(static_cast<float>(pos0 + t), inv_freq[i]);
    float sn, cs;
    sincosf(angle, &sn, &cs);
    sn *= sign;
    auto rotate = [&](float* out, const float* inp, int H) {
      const size_t base = static_cast<size_t>(row) * H * HS;
#pragma unroll 4
      for (int h = 0; h < H; h++) {
        const float* x = inp + base + static_cast<size_t>(h) * HS;
        float* y = out + base + static_cast<size_t>(h) * HS;
        const float x1 = x[i], x2 = x[i + half];
        y[i] = __fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, sn));
        y[i + half] = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sn));
      }
    };
    rotate(qo, qi, NH);
    if (ko) rotate(ko, ki, NKV);
  }
}

// Rows from which the row kernel is used (fewer: decode steps, whose few pairs need every head in its own thread).
constexpr int kRopeRowsMin = 32;

// The kernels index pairs with 32-bit integers; below 2^31 pairs the grid-stride loop cannot wrap either (its stride is
// under 2^28). 2^31 pairs are 16 GB of fp32: beyond any batch here.
void check_pairs(size_t total) {
  if (total >= (size_t{1} << 31))
    QT_FAIL(ErrorCode::Unsupported, "RoPE over " + std::to_string(total) + " pairs (the CUDA kernels index fewer than 2^31)");
}

// rope_forward_qk: one grid over the pairs of q (the first nq) and then those of k, in place; each pair gets exactly
// rope_kernel's math with its own tensor's head count, so the bits are those of the two rope_forward launches.
// Launched with PDL (launch_pdl; a decode step's RoPE): waits for the previous kernel first.
__global__ void rope_qk_kernel(float* q, float* kk, const float* inv_freq, int B, int T, int NH, int NKV, int HS, int pos0) {
  kern::grid_dep_begin();
  const uint32_t nq = static_cast<uint32_t>(B) * T * NH * (HS / 2), total = nq + static_cast<uint32_t>(B) * T * NKV * (HS / 2);
  for (uint32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < total; k += gridDim.x * blockDim.x) {
    if (k < nq) rope_pair(q, q, inv_freq, k, T, NH, HS, pos0, 1.0f);
    else rope_pair(kk, kk, inv_freq, k - nq, T, NKV, HS, pos0, 1.0f);
  }
}

void rope_apply(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0, float sign,
                const char* name) {
  Op op(name);
  const size_t total = static_cast<size_t>(B) * T * H * (HS / 2);
  if (!total) return;
  check_pairs(total);
  if (B * T >= kRopeRowsMin) {
    const uint32_t rows = static_cast<uint32_t>(B) * T;
    rope_rows_kernel<<<grid_for(static_cast<size_t>(rows) * (HS / 2), 256), 256, 0, op.s>>>(out, inp, H, nullptr, nullptr, 0, inv_freq,
                                                                                           rows, T, HS, pos0, sign);
  } else {
    rope_kernel<<<grid_for(total, 256), 256, 0, op.s>>>(out, inp, inv_freq, B, T, H, HS, pos0, sign);
  }
  QT_LAUNCH_CHECK();
}

}  // namespace

void rope_forward(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0) {
  rope_apply(out, inp, inv_freq, B, T, H, HS, pos0, 1.0f, "rope_forward");
}

void rope_forward_qk(float* q, float* k, const float* inv_freq, int B, int T, int NH, int NKV, int HS, int pos0) {
  Op op("rope_forward_qk");
  const size_t total = static_cast<size_t>(B) * T * (NH + NKV) * (HS / 2);
  if (!total) return;
  check_pairs(total);
  if (B * T >= kRopeRowsMin) {
    const uint32_t rows = static_cast<uint32_t>(B) * T;
    rope_rows_kernel<<<grid_for(static_cast<size_t>(rows) * (HS / 2), 256), 256, 0, op.s>>>(q, q, NH, k, k, NKV, inv_freq, rows, T, HS,
                                                                                           pos0, 1.0f);
    QT_LAUNCH_CHECK();
    return;
  }
  launch_pdl(rope_qk_kernel, dim3(grid_for(total, 256)), dim3(256), 0, op.s, q, k, inv_freq, B, T, NH, NKV, HS, pos0);
}

void rope_backward(float* dinp, const float* dout, const float* inv_freq, int B, int T, int H, int HS, int pos0) {
  rope_apply(dinp, dout, inv_freq, B, T, H, HS, pos0, -1.0f, "rope_backward");
}

}  // namespace qt::cuda
