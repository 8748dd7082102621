// Kernels for single-token decode steps (QT_CUDA_DECODE=1, the default since run 3), where run 2's kernels left the
// GPU mostly idle: one row of RMSNorm was one 256-thread block walking 4096 values in 16 dependent steps (~13 us),
// and one query row of attention was a 64-row tensor-core tile walking the keys tile by tile (~19 us per layer).
//   rmsnorm_rows      RMSNorm of a few rows (cpu/rmsnorm.cpp): one block per row, every thread keeps up to 4 float4
//                     of the row in registers (one read of x), sum of squares in double (as the CPU), a warp
//                     xor tree then the warps' sums in order: deterministic. add_rmsnorm_rows: the residual add
//                     before it in the same kernel (the row's values are the sums; the same bits as add + rmsnorm_rows).
//   attn_decode       attention of ONE query row per (batch row, head) over Tk cached keys (cpu/attention.cpp
//                     semantics: causal, GQA, right padding, lse), in fp32 whatever the compute dtype (decode moves
//                     kilobytes: there is nothing to gain from bf16 operands): flash-decoding's split over keys
//                     (Dao et al. 2023): block (s, h, b) takes keys [32 s, 32 s + 32), its 4 warps 8 keys each
//                     (loads of 4 keys in flight, a warp xor tree per dot product, an online softmax per warp), then
//                     the warps merge in order; with one split it writes out and lse, otherwise (o, max, sum) partials
//                     that attn_decode_combine merges in split order (deterministic, no atomics).
// Templates over the kernel context (kernel_ctx.h): rmsnorm.cu / attention.cu launch them, native/tests simulates them.
#pragma once

#include <cmath>

#include "kernel_ctx.h"

namespace qt::kern {

// ---- RMSNorm of a few rows ---------------------------------------------------------------------------------------

struct RmsArgs {
  float* out = nullptr;          // [N, C]
  float* rstd = nullptr;         // [N]
  const float* inp = nullptr;    // [N, C]
  const float* weight = nullptr; // [C]
  int C = 0;                     // C % 4 == 0, C <= 16 * nthreads
  float eps = 0;
};

constexpr int kRmsMaxVec = 4;                     // float4s per thread
constexpr int kRmsSmem = 33 * 8;                  // the warps' sums, then the total (double)
/** Threads per block for a row of C values (a multiple of 32, at most 1024). */
constexpr int rms_rows_threads(int C) {
  return C / 4 <= 1024 ? (C / 4 + 31) / 32 * 32                              // one float4 per thread
                       : ((C / 4 + kRmsMaxVec - 1) / kRmsMaxVec + 31) / 32 * 32;  // up to kRmsMaxVec each
}
/** Whether rmsnorm_rows handles rows of C values (16-byte aligned pointers are the caller's check). */
constexpr bool rms_rows_applies(int C) { return C > 0 && C % 4 == 0 && C / 4 <= kRmsMaxVec * 1024; }

/** The row's sum of squares and output once its values v are in registers (rmsnorm_rows, add_rmsnorm_rows). */
template <class Ctx>
QT_KFN void rmsnorm_rows_of(Ctx& c, const RmsArgs& a, const F4 (&v)[kRmsMaxVec]) {
  double* red = reinterpret_cast<double*>(c.smem());  // [32] warps' sums, [32] the total
  const int64_t row = c.bx();
  const int nv = a.C / 4, nt = c.nthreads(), warp = c.tid() / 32, lane = c.tid() % 32;
  double ss = 0;
  QT_UNROLL
  for (int i = 0; i < kRmsMaxVec; i++) {  // (elements past the row are zeros)
    ss += static_cast<double>(v[i].x) * v[i].x;
    ss += static_cast<double>(v[i].y) * v[i].y;
    ss += static_cast<double>(v[i].z) * v[i].z;
    ss += static_cast<double>(v[i].w) * v[i].w;
  }
  ss = warp_xor_sum(c, ss);
  if (lane == 0) red[warp] = ss;
  c.sync();
  if (warp == 0) {
    double t = 0;
    for (int w = 0; w < nt / 32; w++) t += red[w];  // every lane the same sum, in warp order
    if (lane == 0) red[32] = t;
  }
  c.sync();
  const float r = 1.0f / sqrtf(static_cast<float>(red[32] / a.C) + a.eps);
  if (c.tid() == 0) a.rstd[row] = r;
  float* y = a.out + row * a.C;
  QT_UNROLL
  for (int i = 0; i < kRmsMaxVec; i++) {
    const int e = c.tid() + i * nt;
    if (e >= nv) continue;
    const F4 w = ldg4(a.weight + 4 * e);
    stg16(y + 4 * e, U4{f32_bits(mul_rn(mul_rn(v[i].x, r), w.x)), f32_bits(mul_rn(mul_rn(v[i].y, r), w.y)),
                        f32_bits(mul_rn(mul_rn(v[i].z, r), w.z)), f32_bits(mul_rn(mul_rn(v[i].w, r), w.w))});
  }
}

/** grid N blocks (block b normalises row b); C <= 16 * nthreads, C % 4 == 0, rows 16-byte aligned. */
template <class Ctx>
QT_KFN void rmsnorm_rows(Ctx& c, const RmsArgs& a) {
  const float* x = a.inp + static_cast<int64_t>(c.bx()) * a.C;
  const int nv = a.C / 4, nt = c.nthreads();
  F4 v[kRmsMaxVec];
  QT_UNROLL
  for (int i = 0; i < kRmsMaxVec; i++) {
    const int e = c.tid() + i * nt;
    v[i] = e < nv ? ldg4(x + 4 * e) : F4{0, 0, 0, 0};
  }
  rmsnorm_rows_of(c, a, v);
}

/** The residual add fused in (add_rmsnorm_forward): x_out = xa + xb (each thread adds, stores and keeps its own
 *  float4s, so x_out may alias xa or xb), then rmsnorm_rows of those values: the same bits as the add kernel
 *  followed by rmsnorm_rows on x_out. a.inp is unused. Same grid, block and alignment as rmsnorm_rows. */
template <class Ctx>
QT_KFN void add_rmsnorm_rows(Ctx& c, const RmsArgs& a, float* x_out, const float* xa, const float* xb) {
  const int64_t off = static_cast<int64_t>(c.bx()) * a.C;
  const int nv = a.C / 4, nt = c.nthreads();
  F4 v[kRmsMaxVec];
  QT_UNROLL
  for (int i = 0; i < kRmsMaxVec; i++) {
    const int e = c.tid() + i * nt;
    if (e < nv) {
      const F4 p = ldg4(xa + off + 4 * e), q = ldg4(xb + off + 4 * e);
      v[i] = F4{add_rn(p.x, q.x), add_rn(p.y, q.y), add_rn(p.z, q.z), add_rn(p.w, q.w)};
      stg16(x_out + off + 4 * e, U4{f32_bits(v[i].x), f32_bits(v[i].y), f32_bits(v[i].z), f32_bits(v[i].w)});
    } else {
      v[i] = F4{0, 0, 0, 0};
    }
  }
  rmsnorm_rows_of(c, a, v);
}

// ---- attention of one query row (decode) -------------------------------------------------------------------------

struct DecodeAttnArgs {
  float* out = nullptr;            // [B, 1, NH, HS]
  float* lse = nullptr;            // [B, NH, 1]
  float* part = nullptr;           // [B, NH, S, HSP + 2]: o (unnormalised), max, sum of each split (S > 1)
  const float* q = nullptr;        // [B, 1, NH, HS]
  const float* k = nullptr;        // [B, Tk, NKV, HS]
  const float* v = nullptr;        // [B, Tk, NKV, HS]
  const int32_t* lengths = nullptr;
  int B = 0, Tk = 0, NH = 0, NKV = 0, HS = 0;
  int S = 1;                       // splits (grid x)
  float scale = 0;                 // 1 / sqrt(HS)
};

constexpr int kDecThreads = 128;   // 4 warps
constexpr int kDecKeys = 32;       // keys per split
constexpr int kDecBatch = 4;       // keys whose loads a warp issues together
/** Shared memory of attn_decode: the warps' (max, sum, o[HSP]). */
constexpr int attn_decode_smem(int HSP) { return (kDecThreads / 32) * (HSP + 2) * 4; }
/** Splits for Tk keys. */
constexpr int attn_decode_splits(int Tk) { return Tk <= kDecKeys ? 1 : (Tk + kDecKeys - 1) / kDecKeys; }

/** grid (S, NH, B), kDecThreads threads; HSP = head size padded to 32, 64 or 128 (HS % 4 == 0). */
template <int HSP, class Ctx>
QT_KFN void attn_decode(Ctx& c, const DecodeAttnArgs& p) {
  constexpr int DPL = HSP / 32, NW = kDecThreads / 32, KB = kDecBatch;
  float* sm = reinterpret_cast<float*>(c.smem());  // [NW][HSP + 2]
  const int warp = c.tid() / 32, lane = c.tid() % 32;
  const int s = c.bx(), h = c.by(), b = c.bz(), kh = h / (p.NH / p.NKV);
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int nk = imin(p.Tk, len);  // the query sits at position Tk - 1 and sees keys j < min(Tk, length)
  const int j0 = s * kDecKeys, j1 = imin(j0 + kDecKeys, nk);
  const int d0 = lane * DPL;
  const bool on = d0 < p.HS;  // this lane's dims (HS % 4 == 0: all DPL of them, or none)
  const int64_t kstride = static_cast<int64_t>(p.NKV) * p.HS;
  const float* kb = p.k + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS + d0;
  const float* vb = p.v + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS + d0;
  float qv[DPL], o[DPL];
  const float* qr = p.q + (static_cast<int64_t>(b) * p.NH + h) * p.HS + d0;
  QT_UNROLL
  for (int e = 0; e < DPL; e++) {
    qv[e] = on ? qr[e] : 0.0f;
    o[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int jb = j0 + warp * KB; jb < j1; jb += NW * KB) {  // uniform per warp
    float kv[KB][DPL], vv[KB][DPL];
    QT_UNROLL
    for (int u = 0; u < KB; u++) {
      const int j = jb + u;
      const bool ok = on && j < j1;
      if constexpr (DPL == 4) {  // 16-byte loads (HS % 4 == 0: rows are 16-byte aligned)
        const F4 kf = ok ? ldg4(kb + static_cast<int64_t>(j) * kstride) : F4{0, 0, 0, 0};
        const F4 vf = ok ? ldg4(vb + static_cast<int64_t>(j) * kstride) : F4{0, 0, 0, 0};
        kv[u][0] = kf.x, kv[u][1] = kf.y, kv[u][2] = kf.z, kv[u][3] = kf.w;
        vv[u][0] = vf.x, vv[u][1] = vf.y, vv[u][2] = vf.z, vv[u][3] = vf.w;
      } else {
        QT_UNROLL
        for (int e = 0; e < DPL; e++) {
          kv[u][e] = ok ? kb[static_cast<int64_t>(j) * kstride + e] : 0.0f;
          vv[u][e] = ok ? vb[static_cast<int64_t>(j) * kstride + e] : 0.0f;
        }
      }
    }
    float sc[KB];
    float mx = m;
    QT_UNROLL
    for (int u = 0; u < KB; u++) {
      float d = 0.0f;
      QT_UNROLL
      for (int e = 0; e < DPL; e++) d += qv[e] * kv[u][e];
      d = warp_xor_sum(c, d);
      sc[u] = jb + u < j1 ? d * p.scale : -INFINITY;
      mx = fmax2(mx, sc[u]);
    }
    // online softmax (mx is finite: key jb < j1 is visible)
    const float alpha = m == -INFINITY ? 0.0f : expf(m - mx);
    l *= alpha;
    QT_UNROLL
    for (int e = 0; e < DPL; e++) o[e] *= alpha;
    QT_UNROLL
    for (int u = 0; u < KB; u++) {
      const float pr = sc[u] == -INFINITY ? 0.0f : expf(sc[u] - mx);
      l += pr;
      QT_UNROLL
      for (int e = 0; e < DPL; e++) o[e] += pr * vv[u][e];
    }
    m = mx;
  }
  // merge the warps in order
  float* mine = sm + warp * (HSP + 2);
  QT_UNROLL
  for (int e = 0; e < DPL; e++) mine[d0 + e] = o[e];
  if (lane == 0) {
    mine[HSP] = m;
    mine[HSP + 1] = l;
  }
  c.sync();
  for (int d = c.tid(); d < HSP + 1; d += kDecThreads) {  // thread d < HSP: dim d; thread HSP: the statistics
    float M = -INFINITY;
    for (int w = 0; w < NW; w++) M = fmax2(M, sm[w * (HSP + 2) + HSP]);
    float L = 0.0f, O = 0.0f;
    for (int w = 0; w < NW; w++) {
      const float mw = sm[w * (HSP + 2) + HSP];
      if (mw == -INFINITY) continue;  // a warp that saw no key
      const float f = expf(mw - M);
      L += sm[w * (HSP + 2) + HSP + 1] * f;
      if (d < HSP) O += sm[w * (HSP + 2) + d] * f;
    }
    if (p.S == 1) {
      if (d < p.HS) p.out[(static_cast<int64_t>(b) * p.NH + h) * p.HS + d] = L > 0.0f ? O / L : 0.0f;
      if (d == HSP) p.lse[static_cast<int64_t>(b) * p.NH + h] = L > 0.0f ? M + logf(L) : -INFINITY;
    } else {
      float* pp = p.part + ((static_cast<int64_t>(b) * p.NH + h) * p.S + s) * (HSP + 2);
      if (d < HSP) pp[d] = O;
      if (d == HSP) {
        pp[HSP] = M;
        pp[HSP + 1] = L;
      }
    }
  }
}

/** grid (NH, B), HSP + 32 threads (thread HSP writes lse): merges the S splits of attn_decode in split order. */
template <int HSP, class Ctx>
QT_KFN void attn_decode_combine(Ctx& c, const DecodeAttnArgs& p) {
  const int h = c.bx(), b = c.by(), d = c.tid();
  if (d > HSP) return;  // no barrier below
  const float* pp = p.part + (static_cast<int64_t>(b) * p.NH + h) * p.S * (HSP + 2);
  float M = -INFINITY;
  for (int s = 0; s < p.S; s++) M = fmax2(M, pp[s * (HSP + 2) + HSP]);
  float L = 0.0f, O = 0.0f;
  for (int s = 0; s < p.S; s++) {
    const float ms = pp[s * (HSP + 2) + HSP];
    if (ms == -INFINITY) continue;  // a split past the row's keys
    const float f = expf(ms - M);
    L += pp[s * (HSP + 2) + HSP + 1] * f;
    if (d < HSP) O += pp[s * (HSP + 2) + d] * f;
  }
  if (d < p.HS) p.out[(static_cast<int64_t>(b) * p.NH + h) * p.HS + d] = L > 0.0f ? O / L : 0.0f;
  if (d == HSP) p.lse[static_cast<int64_t>(b) * p.NH + h] = L > 0.0f ? M + logf(L) : -INFINITY;
}

}  // namespace qt::kern
