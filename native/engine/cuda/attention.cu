// Causal GQA attention with a right-padding mask on the GPU, FlashAttention-2 style (Dao 2023): the forward
// pass walks key tiles with an online softmax and keeps only out and the row log-sum-exp (lse); no T x T score
// matrix ever exists in memory. Backward recomputes P = exp(S - lse) tile by tile:
//   D_i = dout_i . out_i;  dP = dout V^T;  dS = P * (dP - D) * scale;  dq = dS K;  dk = dS^T q;  dv = P^T dout.
// Deterministic, without atomics: dq is computed by query-tile blocks walking key tiles, dk/dv by key-tile
// blocks walking query tiles (and the query heads of their KV group), each accumulating in registers in a
// fixed order. FA2 instead adds dq with atomics; here the two passes recompute S and P once more.
// Simplification (run-1 version): fp32 SIMT math on 32 x 32 tiles in shared memory, 128 threads as a 16 x 8
// grid, each thread holding a 4 x (HS/16) slice of the output tile; head size up to 128.
// Semantics (cpu/attention.cpp): query i sits at position Tk - Tq + i and sees keys j <= that position with
// j < length; a row that sees nothing gets out 0 and lse -inf.
// Run 2: the tensor-core kernels of attention_tc.h (bf16 operands on mma.sync, fp32 accumulation and softmax)
// replace these for bf16/fp16 compute on sm_80+ when the head size is a multiple of 4 up to 128; the SIMT
// kernels stay for fp32 compute (the exactness checks), older GPUs, other head sizes and QT_CUDA_ATTN=simt.
// Run 3: a single query row (decode: Tq = 1) runs decode_kernels.h's split-key fp32 kernel instead, for any compute
// dtype (QT_CUDA_DECODE=1; head sizes that are multiples of 4 up to 128); the tensor-core forward multiplies fp16
// operands (QT_CUDA_ATTN=tc16, the default; tc = run 2's bf16 ones).
// Run 11: before the tensor-core kernels, q, k, v (and dout) are rounded once into head-padded 16-bit copies in the
// workspace (attn_pad16_kernel), which the kernels copy with cp.async; a dk/dv pass split per query head writes
// per-head partials that attn_group_sum_kernel adds in head order (attention_tc.h).
#include <map>
#include <mutex>
#include <utility>

#include "attention_tc.h"
#include "decode_kernels.h"
#include "ops.cuh"

namespace qt::cuda {

namespace {

constexpr int BQ = 32;    // query rows per tile (forward, dq)
constexpr int BK = 32;    // keys per tile
constexpr int BQ2 = 16;   // query rows per step of the dk/dv pass
constexpr int kThreads = 128;

__device__ __forceinline__ bool visible(int i, int j, int Tq, int Tk, int len) {
  return i < Tq && j < min(Tk - Tq + i + 1, len);
}

// rows x HS values of a [*, H, HS] tensor (row r = position p0 + r of head h) into smem [rows][LD], zero past `limit`
__device__ __forceinline__ void load_tile(float* dst, int LD, const float* src, int b, int p0, int rows, int limit, int T, int H,
                                          int h, int HS) {
  for (int e = threadIdx.x; e < rows * HS; e += blockDim.x) {
    const int r = e / HS, d = e % HS, p = p0 + r;
    dst[r * LD + d] = p < limit ? src[((static_cast<size_t>(b) * T + p) * H + h) * HS + d] : 0.0f;
  }
}

template <int DJ>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(float* out, float* lse, const float* q, const float* k, const float* v,
                                                            const int32_t* lengths, int Tq, int Tk, int NH, int NKV, int HS,
                                                            float scale) {
  extern __shared__ float sm[];
  const int LD = HS + 1;
  float* Qs = sm;                       // [BQ][LD]
  float* KVs = Qs + BQ * LD;            // [BK][LD]  keys, then values
  float* Ss = KVs + BK * LD;            // [BQ][BK+1] scores, then probabilities
  float* row_m = Ss + BQ * (BK + 1);    // [BQ] running max
  float* row_l = row_m + BQ;            // [BQ] running sum
  float* row_a = row_l + BQ;            // [BQ] rescale factor of this tile
  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BQ, kh = h / (NH / NKV);
  const int len = lengths ? min(lengths[b], Tk) : Tk;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

  load_tile(Qs, LD, q, b, i0, BQ, Tq, Tq, NH, h, HS);
  if (tid < BQ) {
    row_m[tid] = -INFINITY;
    row_l[tid] = 0.0f;
  }
  float acc[4][DJ];
#pragma unroll
  for (int ri = 0; ri < 4; ri++)
#pragma unroll
    for (int jj = 0; jj < DJ; jj++) acc[ri][jj] = 0.0f;
  const int i_last = min(i0 + BQ, Tq) - 1;
  const int nk = min(Tk - Tq + i_last + 1, len);  // keys visible to the tile's last row (the most)
  __syncthreads();

  for (int j0 = 0; j0 < nk; j0 += BK) {
    load_tile(KVs, LD, k, b, j0, BK, Tk, Tk, NKV, kh, HS);
    __syncthreads();
    float s[4][2] = {};
    for (int d = 0; d < HS; d++) {
      float qv[4], kv[2];
#pragma unroll
      for (int ri = 0; ri < 4; ri++) qv[ri] = Qs[(ty + 8 * ri) * LD + d];
#pragma unroll
      for (int cj = 0; cj < 2; cj++) kv[cj] = KVs[(tx + 16 * cj) * LD + d];
#pragma unroll
      for (int ri = 0; ri < 4; ri++)
#pragma unroll
        for (int cj = 0; cj < 2; cj++) s[ri][cj] = fmaf(qv[ri], kv[cj], s[ri][cj]);
    }
#pragma unroll
    for (int ri = 0; ri < 4; ri++)
#pragma unroll
      for (int cj = 0; cj < 2; cj++) {
        const int r = ty + 8 * ri, c = tx + 16 * cj;
        Ss[r * (BK + 1) + c] = visible(i0 + r, j0 + c, Tq, Tk, len) ? s[ri][cj] * scale : -INFINITY;
      }
    __syncthreads();
    // values into KVs while 4 threads per row run the online softmax over Ss
    load_tile(KVs, LD, v, b, j0, BK, Tk, Tk, NKV, kh, HS);
    {
      const int r = tid >> 2, part = tid & 3;
      float* srow = Ss + r * (BK + 1) + part * 8;
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 8; c++) mx = fmaxf(mx, srow[c]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_old = row_m[r], m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < 8; c++) {
        const float p = m_new == -INFINITY ? 0.0f : expf(srow[c] - m_new);
        srow[c] = p;
        sum += p;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      __syncwarp();
      if (part == 0) {
        const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        row_a[r] = alpha;
        row_m[r] = m_new;
        row_l[r] = row_l[r] * alpha + sum;
      }
    }
    __syncthreads();
#pragma unroll
    for (int ri = 0; ri < 4; ri++) {
      const float a = row_a[ty + 8 * ri];
#pragma unroll
      for (int jj = 0; jj < DJ; jj++) acc[ri][jj] *= a;
    }
    for (int c = 0; c < BK; c++) {
      float pv[4];
#pragma unroll
      for (int ri = 0; ri < 4; ri++) pv[ri] = Ss[(ty + 8 * ri) * (BK + 1) + c];
#pragma unroll
      for (int jj = 0; jj < DJ; jj++) {
        const int d = tx + 16 * jj;
        const float vv = d < HS ? KVs[c * LD + d] : 0.0f;
#pragma unroll
        for (int ri = 0; ri < 4; ri++) acc[ri][jj] = fmaf(pv[ri], vv, acc[ri][jj]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int ri = 0; ri < 4; ri++) {
    const int r = ty + 8 * ri, i = i0 + r;
    if (i >= Tq) continue;
    const float l = row_l[r], inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* o = out + ((static_cast<size_t>(b) * Tq + i) * NH + h) * HS;
#pragma unroll
    for (int jj = 0; jj < DJ; jj++) {
      const int d = tx + 16 * jj;
      if (d < HS) o[d] = acc[ri][jj] * inv;
    }
    if (tx == 0) lse[(static_cast<size_t>(b) * NH + h) * Tq + i] = l > 0.0f ? row_m[r] + logf(l) : -INFINITY;
  }
}

// D[b, h, i] = dout_i . out_i (one warp per row)
__global__ void attn_bwd_dot_kernel(float* D, const float* dout, const float* out, int B, int Tq, int NH, int HS) {
  const size_t rows = static_cast<size_t>(B) * Tq * NH;
  const int lane = threadIdx.x % 32;
  const size_t warps = static_cast<size_t>(gridDim.x) * blockDim.x / 32;
  for (size_t row = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32; row < rows; row += warps) {
    const float* a = dout + row * HS;
    const float* o = out + row * HS;
    float s = 0.0f;
    for (int d = lane; d < HS; d += 32) s = fmaf(a[d], o[d], s);
    s = warp_sum(s);
    const int h = static_cast<int>(row % NH), i = static_cast<int>((row / NH) % Tq), b = static_cast<int>(row / NH / Tq);
    if (lane == 0) D[(static_cast<size_t>(b) * NH + h) * Tq + i] = s;
  }
}

template <int DJ>
__global__ void __launch_bounds__(kThreads) attn_bwd_dq_kernel(float* dq, const float* dout, const float* q, const float* k,
                                                               const float* v, const float* lse, const float* D,
                                                               const int32_t* lengths, int Tq, int Tk, int NH, int NKV,
                                                               int HS, float scale) {
  extern __shared__ float sm[];
  const int LD = HS + 1;
  float* Qs = sm;                        // [BQ][LD]
  float* dOs = Qs + BQ * LD;             // [BQ][LD]
  float* KVs = dOs + BQ * LD;            // [BK][LD] values, then keys
  float* Ps = KVs + BK * LD;             // [BQ][BK+1] dS
  float* dPs = Ps + BQ * (BK + 1);       // [BQ][BK+1] dP
  float* row_lse = dPs + BQ * (BK + 1);  // [BQ]
  float* row_D = row_lse + BQ;           // [BQ]
  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BQ, kh = h / (NH / NKV);
  const int len = lengths ? min(lengths[b], Tk) : Tk;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

  load_tile(Qs, LD, q, b, i0, BQ, Tq, Tq, NH, h, HS);
  load_tile(dOs, LD, dout, b, i0, BQ, Tq, Tq, NH, h, HS);
  if (tid < BQ) {
    const int i = i0 + tid;
    row_lse[tid] = i < Tq ? lse[(static_cast<size_t>(b) * NH + h) * Tq + i] : 0.0f;
    row_D[tid] = i < Tq ? D[(static_cast<size_t>(b) * NH + h) * Tq + i] : 0.0f;
  }
  float acc[4][DJ];
#pragma unroll
  for (int ri = 0; ri < 4; ri++)
#pragma unroll
    for (int jj = 0; jj < DJ; jj++) acc[ri][jj] = 0.0f;
  const int i_last = min(i0 + BQ, Tq) - 1;
  const int nk = min(Tk - Tq + i_last + 1, len);
  __syncthreads();

  for (int j0 = 0; j0 < nk; j0 += BK) {
    load_tile(KVs, LD, v, b, j0, BK, Tk, Tk, NKV, kh, HS);
    __syncthreads();
    {  // dP = dO V^T
      float s[4][2] = {};
      for (int d = 0; d < HS; d++) {
        float av[4], bv[2];
#pragma unroll
        for (int ri = 0; ri < 4; ri++) av[ri] = dOs[(ty + 8 * ri) * LD + d];
#pragma unroll
        for (int cj = 0; cj < 2; cj++) bv[cj] = KVs[(tx + 16 * cj) * LD + d];
#pragma unroll
        for (int ri = 0; ri < 4; ri++)
#pragma unroll
          for (int cj = 0; cj < 2; cj++) s[ri][cj] = fmaf(av[ri], bv[cj], s[ri][cj]);
      }
#pragma unroll
      for (int ri = 0; ri < 4; ri++)
#pragma unroll
        for (int cj = 0; cj < 2; cj++) dPs[(ty + 8 * ri) * (BK + 1) + tx + 16 * cj] = s[ri][cj];
    }
    __syncthreads();
    load_tile(KVs, LD, k, b, j0, BK, Tk, Tk, NKV, kh, HS);
    __syncthreads();
    {  // S = Q K^T, P = exp(S*scale - lse), dS = P (dP - D) scale
      float s[4][2] = {};
      for (int d = 0; d < HS; d++) {
        float av[4], bv[2];
#pragma unroll
        for (int ri = 0; ri < 4; ri++) av[ri] = Qs[(ty + 8 * ri) * LD + d];
#pragma unroll
        for (int cj = 0; cj < 2; cj++) bv[cj] = KVs[(tx + 16 * cj) * LD + d];
#pragma unroll
        for (int ri = 0; ri < 4; ri++)
#pragma unroll
          for (int cj = 0; cj < 2; cj++) s[ri][cj] = fmaf(av[ri], bv[cj], s[ri][cj]);
      }
#pragma unroll
      for (int ri = 0; ri < 4; ri++)
#pragma unroll
        for (int cj = 0; cj < 2; cj++) {
          const int r = ty + 8 * ri, c = tx + 16 * cj;
          const float p = visible(i0 + r, j0 + c, Tq, Tk, len) ? expf(s[ri][cj] * scale - row_lse[r]) : 0.0f;
          Ps[r * (BK + 1) + c] = p * (dPs[r * (BK + 1) + c] - row_D[r]) * scale;
        }
    }
    __syncthreads();
    for (int c = 0; c < BK; c++) {  // dq += dS K
      float pv[4];
#pragma unroll
      for (int ri = 0; ri < 4; ri++) pv[ri] = Ps[(ty + 8 * ri) * (BK + 1) + c];
#pragma unroll
      for (int jj = 0; jj < DJ; jj++) {
        const int d = tx + 16 * jj;
        const float kv = d < HS ? KVs[c * LD + d] : 0.0f;
#pragma unroll
        for (int ri = 0; ri < 4; ri++) acc[ri][jj] = fmaf(pv[ri], kv, acc[ri][jj]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int ri = 0; ri < 4; ri++) {
    const int i = i0 + ty + 8 * ri;
    if (i >= Tq) continue;
    float* o = dq + ((static_cast<size_t>(b) * Tq + i) * NH + h) * HS;
#pragma unroll
    for (int jj = 0; jj < DJ; jj++) {
      const int d = tx + 16 * jj;
      if (d < HS) o[d] += acc[ri][jj];
    }
  }
}

template <int DJ>
__global__ void __launch_bounds__(kThreads) attn_bwd_dkv_kernel(float* dk, float* dv, const float* dout, const float* q,
                                                                const float* k, const float* v, const float* lse,
                                                                const float* D, const int32_t* lengths, int Tq, int Tk,
                                                                int NH, int NKV, int HS, float scale) {
  extern __shared__ float sm[];
  const int LD = HS + 1;
  float* Ks = sm;                        // [BK][LD]
  float* Vs = Ks + BK * LD;              // [BK][LD]
  float* Qs = Vs + BK * LD;              // [BQ2][LD]
  float* dOs = Qs + BQ2 * LD;            // [BQ2][LD]
  float* Ps = dOs + BQ2 * LD;            // [BK][BQ2+1] P^T
  float* dSs = Ps + BK * (BQ2 + 1);      // [BK][BQ2+1] dS^T
  float* q_lse = dSs + BK * (BQ2 + 1);   // [BQ2]
  float* q_D = q_lse + BQ2;              // [BQ2]
  const int b = blockIdx.z, kh = blockIdx.y, j0 = blockIdx.x * BK, group = NH / NKV;
  const int len = lengths ? min(lengths[b], Tk) : Tk;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  if (j0 >= len) return;  // no query sees these keys: nothing to add

  load_tile(Ks, LD, k, b, j0, BK, Tk, Tk, NKV, kh, HS);
  load_tile(Vs, LD, v, b, j0, BK, Tk, Tk, NKV, kh, HS);
  float adk[4][DJ], adv[4][DJ];
#pragma unroll
  for (int ri = 0; ri < 4; ri++)
#pragma unroll
    for (int jj = 0; jj < DJ; jj++) adk[ri][jj] = adv[ri][jj] = 0.0f;
  const int i_first = max(0, j0 - (Tk - Tq));  // the first query whose position reaches key j0

  for (int h = kh * group; h < (kh + 1) * group; h++) {
    for (int i0 = i_first / BQ2 * BQ2; i0 < Tq; i0 += BQ2) {
      __syncthreads();  // the previous step is done with Qs, dOs, Ps, dSs
      load_tile(Qs, LD, q, b, i0, BQ2, Tq, Tq, NH, h, HS);
      load_tile(dOs, LD, dout, b, i0, BQ2, Tq, Tq, NH, h, HS);
      if (tid < BQ2) {
        const int i = i0 + tid;
        q_lse[tid] = i < Tq ? lse[(static_cast<size_t>(b) * NH + h) * Tq + i] : 0.0f;
        q_D[tid] = i < Tq ? D[(static_cast<size_t>(b) * NH + h) * Tq + i] : 0.0f;
      }
      __syncthreads();
      {  // thread: query column tx, key rows ty + 8 ri
        float s[4] = {}, dp[4] = {};
        for (int d = 0; d < HS; d++) {
          const float qv = Qs[tx * LD + d], ov = dOs[tx * LD + d];
#pragma unroll
          for (int ri = 0; ri < 4; ri++) {
            s[ri] = fmaf(Ks[(ty + 8 * ri) * LD + d], qv, s[ri]);
            dp[ri] = fmaf(Vs[(ty + 8 * ri) * LD + d], ov, dp[ri]);
          }
        }
#pragma unroll
        for (int ri = 0; ri < 4; ri++) {
          const int r = ty + 8 * ri;
          const float p = visible(i0 + tx, j0 + r, Tq, Tk, len) ? expf(s[ri] * scale - q_lse[tx]) : 0.0f;
          Ps[r * (BQ2 + 1) + tx] = p;
          dSs[r * (BQ2 + 1) + tx] = p * (dp[ri] - q_D[tx]) * scale;
        }
      }
      __syncthreads();
      for (int c = 0; c < BQ2; c++) {  // dv += P^T dO, dk += dS^T Q
        float pv[4], sv[4];
#pragma unroll
        for (int ri = 0; ri < 4; ri++) {
          pv[ri] = Ps[(ty + 8 * ri) * (BQ2 + 1) + c];
          sv[ri] = dSs[(ty + 8 * ri) * (BQ2 + 1) + c];
        }
#pragma unroll
        for (int jj = 0; jj < DJ; jj++) {
          const int d = tx + 16 * jj;
          const float ov = d < HS ? dOs[c * LD + d] : 0.0f, qv = d < HS ? Qs[c * LD + d] : 0.0f;
#pragma unroll
          for (int ri = 0; ri < 4; ri++) {
            adv[ri][jj] = fmaf(pv[ri], ov, adv[ri][jj]);
            adk[ri][jj] = fmaf(sv[ri], qv, adk[ri][jj]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int ri = 0; ri < 4; ri++) {
    const int j = j0 + ty + 8 * ri;
    if (j >= Tk) continue;
    const size_t off = ((static_cast<size_t>(b) * Tk + j) * NKV + kh) * HS;
#pragma unroll
    for (int jj = 0; jj < DJ; jj++) {
      const int d = tx + 16 * jj;
      if (d < HS) {
        dk[off + d] += adk[ri][jj];
        dv[off + d] += adv[ri][jj];
      }
    }
  }
}

size_t fwd_smem(int HS) { return sizeof(float) * (static_cast<size_t>(BQ + BK) * (HS + 1) + BQ * (BK + 1) + 3 * BQ); }
size_t dq_smem(int HS) { return sizeof(float) * (static_cast<size_t>(2 * BQ + BK) * (HS + 1) + 2 * BQ * (BK + 1) + 2 * BQ); }
size_t dkv_smem(int HS) {
  return sizeof(float) * (static_cast<size_t>(2 * BK + 2 * BQ2) * (HS + 1) + 2 * BK * (BQ2 + 1) + 2 * BQ2);
}

// Kernels that need more than the default 48 KB of dynamic shared memory must say so (per device).
// Remembered per (kernel, device), so a decode step's launches do not pay for the attribute call every time.
template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, size_t> raised;
  int dev = 0;
  QT_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lk(mu);
  size_t& cur = raised[{reinterpret_cast<const void*>(kernel), dev}];
  if (cur >= bytes) return;
  QT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  cur = bytes;
}

void check_dims(int NH, int NKV, int HS) {
  if (HS > 128 || HS <= 0) QT_FAIL(ErrorCode::Unsupported, "attention: head size " + std::to_string(HS) + " (the CUDA kernels support up to 128)");
  if (NKV <= 0 || NH % NKV != 0) QT_FAIL(ErrorCode::Internal, "attention: heads not a multiple of KV heads");
}

template <int DJ>
void fwd_launch(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* lengths,
                int B, int Tq, int Tk, int NH, int NKV, int HS) {
  const size_t smem = fwd_smem(HS);
  allow_smem(attn_fwd_kernel<DJ>, smem);
  dim3 grid((Tq + BQ - 1) / BQ, NH, B);
  attn_fwd_kernel<DJ><<<grid, kThreads, smem, s>>>(out, lse, q, k, v, lengths, Tq, Tk, NH, NKV, HS, 1.0f / sqrtf(static_cast<float>(HS)));
  QT_LAUNCH_CHECK();
}

template <int DJ>
void bwd_launch(cudaStream_t s, float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                const float* v, const float* lse, const float* D, const int32_t* lengths, int B, int Tq, int Tk, int NH,
                int NKV, int HS) {
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const size_t s1 = dq_smem(HS), s2 = dkv_smem(HS);
  allow_smem(attn_bwd_dq_kernel<DJ>, s1);
  allow_smem(attn_bwd_dkv_kernel<DJ>, s2);
  attn_bwd_dq_kernel<DJ><<<dim3((Tq + BQ - 1) / BQ, NH, B), kThreads, s1, s>>>(dq, dout, q, k, v, lse, D, lengths, Tq, Tk, NH, NKV, HS, scale);
  QT_LAUNCH_CHECK();
  attn_bwd_dkv_kernel<DJ><<<dim3((Tk + BK - 1) / BK, NKV, B), kThreads, s2, s>>>(dk, dv, dout, q, k, v, lse, D, lengths, Tq, Tk, NH, NKV, HS, scale);
  QT_LAUNCH_CHECK();
}

// ---- tensor-core kernels (attention_tc.h) ----

template <int HSP, kern::TcOp OP, int MT>
__global__ void __launch_bounds__(kern::kAttnThreads) attn_fwd_tc_kernel(kern::AttnArgs a) {
  kern::DevCtx c;
  kern::attn_fwd_tc<HSP, OP, MT>(c, a);
}

template <int HSP>
__global__ void __launch_bounds__(kern::kAttnThreads) attn_dq_tc_kernel(kern::AttnArgs a) {
  kern::DevCtx c;
  kern::attn_dq_tc<HSP>(c, a);
}

template <int HSP>
__global__ void __launch_bounds__(kern::kAttnThreads) attn_dq_ds_tc_kernel(kern::AttnArgs a) {
  kern::DevCtx c;
  kern::attn_dq_ds_tc<HSP>(c, a);
}

template <int HSP>
__global__ void __launch_bounds__(kern::kAttnThreads) attn_dkv_tc_kernel(kern::AttnArgs a) {
  kern::DevCtx c;
  kern::attn_dkv_tc<HSP>(c, a);
}

// 16-bit copy of an fp32 [rows, HS] tensor with rows padded to HSP columns (attention_tc.h): one 16-byte chunk per thread
template <kern::TcOp OP>
__global__ void attn_pad16_kernel(uint16_t* dst, const float* src, int64_t rows, int HS, int HSP) {
  const int CH = HSP / 8;
  const int64_t n = rows * CH;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n; e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = e / CH;
    const int ch = static_cast<int>(e % CH);
    kern::stg16(dst + e * 8, kern::pad16_chunk<OP>(src, row, ch, HS));
  }
}

// dk/dv of a split dk/dv pass: d[b, j, kh, :] += sum over the group's query heads of part[b, j, h, :], in head order
__global__ void attn_group_sum_kernel(float* dk, float* dv, const float* pk, const float* pv, int64_t rows, int NKV, int group,
                                      int HS) {
  const int64_t n = rows * NKV * HS;  // rows = B * Tk
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n; e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(e % HS);
    const int64_t rk = e / HS;  // row * NKV + kh
    const float* sk = pk + rk * group * HS + d;  // part row (row, h = kh * group) = rk * group
    const float* sv = pv + rk * group * HS + d;
    float ak = 0.0f, av = 0.0f;
    for (int g = 0; g < group; g++) {
      ak += sk[static_cast<int64_t>(g) * HS];
      av += sv[static_cast<int64_t>(g) * HS];
    }
    dk[e] += ak;
    dv[e] += av;
  }
}

// ---- single-query kernels (decode_kernels.h), launched with PDL (launch_pdl): each waits for the previous kernel ----

template <int HSP>
__global__ void __launch_bounds__(kern::kDecThreads) attn_decode_kernel(kern::DecodeAttnArgs a) {
  kern::DevCtx c;
  kern::grid_dep_begin();
  kern::attn_decode<HSP>(c, a);
}

template <int HSP>
__global__ void __launch_bounds__(HSP + 32) attn_decode_combine_kernel(kern::DecodeAttnArgs a) {
  kern::DevCtx c;
  kern::grid_dep_begin();
  kern::attn_decode_combine<HSP>(c, a);
}

template <int HSP>
void decode_forward(DeviceCtx& dc, cudaStream_t s, kern::DecodeAttnArgs a) {
  a.S = kern::attn_decode_splits(a.Tk);
  if (a.S > 1) a.part = static_cast<float*>(workspace(dc, static_cast<size_t>(a.B) * a.NH * a.S * (HSP + 2) * sizeof(float)));
  launch_pdl(attn_decode_kernel<HSP>, dim3(static_cast<unsigned>(a.S), a.NH, a.B), dim3(kern::kDecThreads),
             static_cast<size_t>(kern::attn_decode_smem(HSP)), s, a);
  if (a.S == 1) return;
  launch_pdl(attn_decode_combine_kernel<HSP>, dim3(a.NH, a.B), dim3(HSP + 32), 0, s, a);
}

bool use_decode(int B, int Tq, int Tk, int NH, int HS) {
  return paths().decode && Tq == 1 && Tk >= 1 && HS > 0 && HS <= 128 && HS % 4 == 0 && NH <= 65535 && B <= 65535;
}

bool use_tc(DeviceCtx& c, DType compute, int HS) {
  return paths().attn != Paths::kAttnSimt && compute != DType::F32 && c.prop.major >= 8 && HS > 0 && HS <= 128 && HS % 4 == 0;
}

kern::AttnArgs tc_args(int B, int Tq, int Tk, int NH, int NKV, int HS, const int32_t* lengths) {
  kern::AttnArgs a;
  a.B = B;
  a.Tq = Tq;
  a.Tk = Tk;
  a.NH = NH;
  a.NKV = NKV;
  a.HS = HS;
  a.lengths = lengths;
  a.scale = 1.0f / sqrtf(static_cast<float>(HS));
  return a;
}

int padded_head(int HS) { return HS <= 32 ? 32 : HS <= 64 ? 64 : 128; }

template <kern::TcOp OP>
void pad16(cudaStream_t s, uint16_t* dst, const float* src, int64_t rows, int HS) {
  const int HSP = padded_head(HS);
  attn_pad16_kernel<OP><<<grid_for(static_cast<size_t>(rows) * (HSP / 8), 256), 256, 0, s>>>(dst, src, rows, HS, HSP);
  QT_LAUNCH_CHECK();
}

template <int HSP, kern::TcOp OP, int MT>
void tc_forward_mt(cudaStream_t s, const kern::AttnArgs& a) {
  const size_t smem = kern::attn_fwd_smem(HSP, MT);
  const int rows = kern::attn_fwd_rows(MT);
  allow_smem(attn_fwd_tc_kernel<HSP, OP, MT>, smem);
  attn_fwd_tc_kernel<HSP, OP, MT><<<dim3((a.Tq + rows - 1) / rows, a.NH, a.B), kern::kAttnThreads, smem, s>>>(a);
  QT_LAUNCH_CHECK();
}

template <int HSP, kern::TcOp OP>
void tc_forward_op(cudaStream_t s, const kern::AttnArgs& a) {
  if (paths().attn_fwd_mt == 1) tc_forward_mt<HSP, OP, 1>(s, a);
  else tc_forward_mt<HSP, OP, 2>(s, a);
}

// q, k, v rounded once into padded 16-bit copies (the forward's operand type), then the kernel
template <kern::TcOp OP>
void tc_forward(DeviceCtx& dc, cudaStream_t s, kern::AttnArgs a, const float* q, const float* k, const float* v) {
  const int HSP = padded_head(a.HS);
  const int64_t rq = static_cast<int64_t>(a.B) * a.Tq * a.NH, rk = static_cast<int64_t>(a.B) * a.Tk * a.NKV;
  Carve cv(dc);
  const size_t oq = cv.add(static_cast<size_t>(rq) * HSP * 2), ok = cv.add(static_cast<size_t>(rk) * HSP * 2),
               ov = cv.add(static_cast<size_t>(rk) * HSP * 2);
  char* base = cv.commit();
  uint16_t* q16 = reinterpret_cast<uint16_t*>(base + oq);
  uint16_t* k16 = reinterpret_cast<uint16_t*>(base + ok);
  uint16_t* v16 = reinterpret_cast<uint16_t*>(base + ov);
  pad16<OP>(s, q16, q, rq, a.HS);
  pad16<OP>(s, k16, k, rk, a.HS);
  pad16<OP>(s, v16, v, rk, a.HS);
  a.q = q16;
  a.k = k16;
  a.v = v16;
  if (HSP == 32) tc_forward_op<32, OP>(s, a);
  else if (HSP == 64) tc_forward_op<64, OP>(s, a);
  else tc_forward_op<128, OP>(s, a);
}

// Whether the dk/dv pass runs a block per query head (partials, then attn_group_sum): when a block per KV head would
// leave the GPU less than two blocks per SM (QT_CUDA_ATTN_SPLIT=1|0 forces it on or off).
bool split_dkv(const DeviceCtx& dc, int B, int Tk, int NH, int NKV) {
  if (NH == NKV || paths().attn_split == 0) return false;
  if (paths().attn_split == 1) return true;
  const int64_t blocks = static_cast<int64_t>((Tk + kern::kAttnBK - 1) / kern::kAttnBK) * NKV * B;
  return NH > NKV && blocks < 2 * static_cast<int64_t>(dc.prop.multiProcessorCount);
}

template <int HSP>
void tc_backward_op(cudaStream_t s, const kern::AttnArgs& a) {
  if (a.ds) {  // dk/dv first (it stores dS), then dq = dS K
    const size_t s1 = kern::attn_dq_ds_smem(HSP), s2 = kern::attn_dkv_ds_smem(HSP);
    allow_smem(attn_dq_ds_tc_kernel<HSP>, s1);
    allow_smem(attn_dkv_tc_kernel<HSP>, s2);
    attn_dkv_tc_kernel<HSP><<<dim3((a.Tk + kern::kAttnBK - 1) / kern::kAttnBK, a.dkv_split ? a.NH : a.NKV, a.B), kern::kAttnThreads, s2, s>>>(a);
    QT_LAUNCH_CHECK();
    attn_dq_ds_tc_kernel<HSP><<<dim3((a.Tq + kern::kAttnBQ - 1) / kern::kAttnBQ, a.NH, a.B), kern::kAttnThreads, s1, s>>>(a);
    QT_LAUNCH_CHECK();
    return;
  }
  const size_t s1 = kern::attn_dq_smem(HSP), s2 = kern::attn_dkv_smem(HSP);
  allow_smem(attn_dq_tc_kernel<HSP>, s1);
  allow_smem(attn_dkv_tc_kernel<HSP>, s2);
  attn_dq_tc_kernel<HSP><<<dim3((a.Tq + kern::kAttnBQ - 1) / kern::kAttnBQ, a.NH, a.B), kern::kAttnThreads, s1, s>>>(a);
  QT_LAUNCH_CHECK();
  attn_dkv_tc_kernel<HSP><<<dim3((a.Tk + kern::kAttnBK - 1) / kern::kAttnBK, a.dkv_split ? a.NH : a.NKV, a.B), kern::kAttnThreads, s2, s>>>(a);
  QT_LAUNCH_CHECK();
}

// D = rowsum(dout * out), q, k, v, dout rounded once into padded bf16 copies, the two kernels, and for a split dk/dv
// pass the sum of its per-head partials
void tc_backward(DeviceCtx& dc, cudaStream_t s, kern::AttnArgs a, const float* dout, const float* q, const float* k,
                 const float* v, const float* out) {
  const int HSP = padded_head(a.HS);
  const int64_t rq = static_cast<int64_t>(a.B) * a.Tq * a.NH, rk = static_cast<int64_t>(a.B) * a.Tk * a.NKV;
  a.dkv_split = split_dkv(dc, a.B, a.Tk, a.NH, a.NKV);
  const size_t part = a.dkv_split ? static_cast<size_t>(a.B) * a.Tk * a.NH * a.HS * sizeof(float) : 0;
  const bool ds = paths().attn_ds && a.Tq == a.Tk && a.Tq <= kern::kAttnDsMaxT;
  const size_t ds_bytes = ds ? static_cast<size_t>(a.B) * a.NH * kern::attn_ds_tiles(a.Tq) * kern::kAttnBQ * kern::kAttnBK * 2 : 0;
  Carve cv(dc);
  const size_t oD = cv.add(static_cast<size_t>(rq) * sizeof(float)), oq = cv.add(static_cast<size_t>(rq) * HSP * 2),
               odo = cv.add(static_cast<size_t>(rq) * HSP * 2), ok = cv.add(static_cast<size_t>(rk) * HSP * 2),
               ov = cv.add(static_cast<size_t>(rk) * HSP * 2), opk = cv.add(part), opv = cv.add(part), ods = cv.add(ds_bytes);
  char* base = cv.commit();
  a.ds = ds ? reinterpret_cast<uint16_t*>(base + ods) : nullptr;
  float* D = reinterpret_cast<float*>(base + oD);
  attn_bwd_dot_kernel<<<grid_for(static_cast<size_t>(rq) * 32, 256), 256, 0, s>>>(D, dout, out, a.B, a.Tq, a.NH, a.HS);
  QT_LAUNCH_CHECK();
  uint16_t* q16 = reinterpret_cast<uint16_t*>(base + oq);
  uint16_t* do16 = reinterpret_cast<uint16_t*>(base + odo);
  uint16_t* k16 = reinterpret_cast<uint16_t*>(base + ok);
  uint16_t* v16 = reinterpret_cast<uint16_t*>(base + ov);
  pad16<kern::TcOp::BF16>(s, q16, q, rq, a.HS);
  pad16<kern::TcOp::BF16>(s, do16, dout, rq, a.HS);
  pad16<kern::TcOp::BF16>(s, k16, k, rk, a.HS);
  pad16<kern::TcOp::BF16>(s, v16, v, rk, a.HS);
  a.q = q16;
  a.dout = do16;
  a.k = k16;
  a.v = v16;
  a.D = D;
  float* dk = a.dk;
  float* dv = a.dv;
  if (a.dkv_split) {
    a.dk = reinterpret_cast<float*>(base + opk);
    a.dv = reinterpret_cast<float*>(base + opv);
  }
  if (HSP == 32) tc_backward_op<32>(s, a);
  else if (HSP == 64) tc_backward_op<64>(s, a);
  else tc_backward_op<128>(s, a);
  if (!a.dkv_split) return;
  const int64_t rows = static_cast<int64_t>(a.B) * a.Tk;
  attn_group_sum_kernel<<<grid_for(static_cast<size_t>(rows) * a.NKV * a.HS, 256), 256, 0, s>>>(dk, dv, a.dk, a.dv, rows, a.NKV,
                                                                                                 a.NH / a.NKV, a.HS);
  QT_LAUNCH_CHECK();
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* lengths,
                       int B, int Tq, int Tk, int NH, int NKV, int HS, DType compute) {
  Op op("attention_forward");
  check_dims(NH, NKV, HS);
  if (B <= 0 || Tq <= 0) return;
  if (use_decode(B, Tq, Tk, NH, HS)) {
    Section sec(op.c, "attention.decode");
    kern::DecodeAttnArgs a;
    a.out = out;
    a.lse = lse;
    a.q = q;
    a.k = k;
    a.v = v;
    a.lengths = lengths;
    a.B = B;
    a.Tk = Tk;
    a.NH = NH;
    a.NKV = NKV;
    a.HS = HS;
    a.scale = 1.0f / sqrtf(static_cast<float>(HS));
    if (HS <= 32) decode_forward<32>(op.c, op.s, a);
    else if (HS <= 64) decode_forward<64>(op.c, op.s, a);
    else decode_forward<128>(op.c, op.s, a);
    return;
  }
  if (use_tc(op.c, compute, HS)) {
    Section sec(op.c, "attention.tc");
    kern::AttnArgs a = tc_args(B, Tq, Tk, NH, NKV, HS, lengths);
    a.out = out;
    a.lse = lse;
    if (paths().attn == Paths::kAttnTc16) tc_forward<kern::TcOp::F16>(op.c, op.s, a, q, k, v);
    else tc_forward<kern::TcOp::BF16>(op.c, op.s, a, q, k, v);
    return;
  }
  if (HS <= 16) fwd_launch<1>(op.s, out, lse, q, k, v, lengths, B, Tq, Tk, NH, NKV, HS);
  else if (HS <= 32) fwd_launch<2>(op.s, out, lse, q, k, v, lengths, B, Tq, Tk, NH, NKV, HS);
  else if (HS <= 64) fwd_launch<4>(op.s, out, lse, q, k, v, lengths, B, Tq, Tk, NH, NKV, HS);
  else fwd_launch<8>(op.s, out, lse, q, k, v, lengths, B, Tq, Tk, NH, NKV, HS);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const int32_t* lengths, int B, int Tq,
                        int Tk, int NH, int NKV, int HS, DType compute) {
  Op op("attention_backward");
  check_dims(NH, NKV, HS);
  if (B <= 0 || Tq <= 0 || Tk <= 0) return;
  if (use_tc(op.c, compute, HS)) {
    Section sec(op.c, "attention.tc");
    kern::AttnArgs a = tc_args(B, Tq, Tk, NH, NKV, HS, lengths);
    a.dq = dq;
    a.dk = dk;
    a.dv = dv;
    a.lse_in = lse;
    tc_backward(op.c, op.s, a, dout, q, k, v, out);
    return;
  }
  float* D = static_cast<float*>(workspace(op.c, static_cast<size_t>(B) * NH * Tq * sizeof(float)));
  const size_t rows = static_cast<size_t>(B) * Tq * NH;
  attn_bwd_dot_kernel<<<grid_for(rows * 32, 256), 256, 0, op.s>>>(D, dout, out, B, Tq, NH, HS);
  QT_LAUNCH_CHECK();
  if (HS <= 16) bwd_launch<1>(op.s, dq, dk, dv, dout, q, k, v, lse, D, lengths, B, Tq, Tk, NH, NKV, HS);
  else if (HS <= 32) bwd_launch<2>(op.s, dq, dk, dv, dout, q, k, v, lse, D, lengths, B, Tq, Tk, NH, NKV, HS);
  else if (HS <= 64) bwd_launch<4>(op.s, dq, dk, dv, dout, q, k, v, lse, D, lengths, B, Tq, Tk, NH, NKV, HS);
  else bwd_launch<8>(op.s, dq, dk, dv, dout, q, k, v, lse, D, lengths, B, Tq, Tk, NH, NKV, HS);
}

}  // namespace qt::cuda
