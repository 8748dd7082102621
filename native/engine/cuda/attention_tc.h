// Tensor-core flash attention (FlashAttention-2, Dao 2023) for the CUDA backend: bf16 operands on mma.sync
// m16n8k16 with fp32 accumulation, the online softmax in fp32, causal + GQA + right padding, the row
// log-sum-exp kept for backward. Backward is deterministic without atomics, as the SIMT version in
// attention.cu: one kernel accumulates dq per query tile (walking key tiles), another dk/dv per key tile
// (walking the query heads of its KV group and their query tiles); each recomputes P = exp(S - lse).
// Run 3: the forward's operands (q, k, v and P) may be fp16 instead (TcOp::F16, QT_CUDA_ATTN=tc16, the default): the
// same fragment layouts on the .f16 mma, 8x finer rounding, for the accuracy of the logits (BENCHMARKS.md v3).
//
// The bodies are templates over the kernel context (kernel_ctx.h): attention.cu launches them on the GPU,
// native/tests runs them in the warp simulator against cpu/attention.cpp.
//
// Layouts (backend.h): q/out/dq/dout [B, Tq, NH, HS], k/v/dk/dv [B, Tk, NKV, HS], lse/D [B, NH, Tq], fp32.
// Query i sits at position Tk - Tq + i and sees keys j < min(Tk - Tq + i + 1, length[b]).
//
// Tiles: 4 warps (128 threads); every warp owns 16 rows of the block's tile. HSP = head size padded to 32, 64
// or 128 (columns >= HS are zero in shared memory, and never stored). Shared-memory tiles hold bf16, rows padded
// by 8 elements (16 bytes) so the fragment loads of a warp hit 32 different banks. A tile is read from global
// memory as fp32 (16-byte loads, HS % 4 == 0), rounded to bf16 (nearest even) and stored row-major ([row][d],
// for operands whose fragments run along d) or transposed ([d][row], for those that run along the rows).
//
// mma.sync m16n8k16 fragments (PTX ISA), lane = 4 g + t:
//   A 16x16: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)   [row, col pair]
//   B 16x8:  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C 16x8:  c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
// so the C fragments of two adjacent 8-column tiles are, packed to bf16 pairs, the A fragment of the next
// product over those 16 columns (FA2's register reuse of P).
#pragma once

#include <cmath>

#include "kernel_ctx.h"

namespace qt::kern {

struct AttnArgs {
  float* out = nullptr;        // forward: [B, Tq, NH, HS]
  float* lse = nullptr;        // forward: [B, NH, Tq]
  float* dq = nullptr;         // backward (+=)
  float* dk = nullptr;         // backward (+=)
  float* dv = nullptr;         // backward (+=)
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* dout = nullptr;  // backward
  const float* lse_in = nullptr;  // backward: the forward's lse
  const float* D = nullptr;       // backward: D[b, h, i] = dout_i . out_i
  const int32_t* lengths = nullptr;
  int B = 0, Tq = 0, Tk = 0, NH = 0, NKV = 0, HS = 0;
  float scale = 0;  // 1 / sqrt(HS)
};

constexpr int kAttnThreads = 128;
constexpr int kAttnBQ = 64;   // query rows per block (forward, dq)
constexpr int kAttnBK = 64;   // keys per tile (forward, dq) and per block (dk/dv)
constexpr int kAttnBQ2 = 32;  // query rows per step of the dk/dv kernel
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

/** Shared memory (bytes) of each kernel for a padded head size. */
constexpr int attn_fwd_smem(int HSP) { return 2 * ((2 * kAttnBQ) * (HSP + 8) + HSP * (kAttnBK + 8)); }
constexpr int attn_dq_smem(int HSP) { return 2 * ((2 * kAttnBQ + 2 * kAttnBK) * (HSP + 8) + HSP * (kAttnBK + 8)); }
constexpr int attn_dkv_smem(int HSP) {
  return 2 * ((2 * kAttnBK + 2 * kAttnBQ2) * (HSP + 8) + 2 * HSP * (kAttnBQ2 + 8)) + 2 * kAttnBQ2 * 4;
}

/** Operand type of the FORWARD kernel's tensor-core products (Q K^T and P V): QT_CUDA_ATTN=tc16 (default since run 3)
 *  uses fp16 (11 significant bits against bf16's 8: 8x less rounding of q, k, v and the probabilities), tc bf16 (run
 *  2). fp16 conversions saturate at +-65504 (never inf); a Llama's q, k, v are orders of magnitude smaller and P <= 1.
 *  The backward kernels stay on bf16 (their dS products span a range fp16 would underflow). */
enum class TcOp { BF16, F16 };

template <TcOp OP>
QT_KFN uint16_t op_bits(float x) { return OP == TcOp::F16 ? f16_bits_sat(x) : bf16_bits(x); }
template <TcOp OP>
QT_KFN uint32_t op_pack(float lo, float hi) { return OP == TcOp::F16 ? pack_f16(lo, hi) : pack_bf16(lo, hi); }
template <TcOp OP, class Ctx>
QT_KFN void op_mma(Ctx& c, float d[4], const uint32_t a[4], const uint32_t b[2]) {
  if (OP == TcOp::F16) c.mma_f16(d, a, b);
  else c.mma_bf16(d, a, b);
}

// ---- tile loads: global fp32 -> shared bf16 (or fp16) ----------------------------------------------------------

/** dst[r][d] (row stride LD) = bf16(src row p0 + r, column d) for r < ROWS, d < HSP; 0 where p0 + r >= limit or
 *  d >= HS. Row p of the source starts at base + p * stride (floats). */
template <int HSP, int ROWS, int LD, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void tile_rows(Ctx& c, uint16_t* dst, const float* base, int64_t stride, int p0, int limit, int HS) {
  constexpr int Q4 = HSP / 4;  // float4s per row
  for (int e = c.tid(); e < ROWS * Q4; e += kAttnThreads) {
    const int r = e / Q4, d = (e % Q4) * 4, p = p0 + r;
    F4 x{0, 0, 0, 0};
    if (p < limit && d < HS) x = ldg4(base + static_cast<int64_t>(p) * stride + d);
    sts32(dst + r * LD + d, op_pack<OP>(x.x, x.y));
    sts32(dst + r * LD + d + 2, op_pack<OP>(x.z, x.w));
  }
}

/** Transposed: dst[d][r] (row stride LD) = bf16(src row p0 + r, column d); same zero rules. A warp covers 32
 *  consecutive rows of one column group (its 16-bit stores fall in distinct or shared words, no conflicts). */
template <int HSP, int ROWS, int LD, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void tile_cols(Ctx& c, uint16_t* dst, const float* base, int64_t stride, int p0, int limit, int HS) {
  constexpr int Q4 = HSP / 4;
  for (int e = c.tid(); e < ROWS * Q4; e += kAttnThreads) {
    const int r = e % ROWS, d = (e / ROWS) * 4, p = p0 + r;
    F4 x{0, 0, 0, 0};
    if (p < limit && d < HS) x = ldg4(base + static_cast<int64_t>(p) * stride + d);
    dst[(d + 0) * LD + r] = op_bits<OP>(x.x);
    dst[(d + 1) * LD + r] = op_bits<OP>(x.y);
    dst[(d + 2) * LD + r] = op_bits<OP>(x.z);
    dst[(d + 3) * LD + r] = op_bits<OP>(x.w);
  }
}

/** A fragment of rows m0..m0+15, columns k0..k0+15 of a row-major bf16 tile. */
template <int LD>
QT_KFN void frag_a(uint32_t a[4], const uint16_t* s, int m0, int k0, int g, int t) {
  a[0] = lds32(s + (m0 + g) * LD + k0 + 2 * t);
  a[1] = lds32(s + (m0 + g + 8) * LD + k0 + 2 * t);
  a[2] = lds32(s + (m0 + g) * LD + k0 + 8 + 2 * t);
  a[3] = lds32(s + (m0 + g + 8) * LD + k0 + 8 + 2 * t);
}

/** B fragment (16 x 8: k0..k0+15 by n0..n0+7) of a tile stored as [n][k] (n-major rows, k contiguous). */
template <int LD>
QT_KFN void frag_b(uint32_t b[2], const uint16_t* s, int n0, int k0, int g, int t) {
  b[0] = lds32(s + (n0 + g) * LD + k0 + 2 * t);
  b[1] = lds32(s + (n0 + g) * LD + k0 + 8 + 2 * t);
}

/** The C fragments of 8-column tiles 2kk and 2kk+1 as the bf16 (or fp16) A fragment over those 16 columns. */
template <TcOp OP = TcOp::BF16>
QT_KFN void c_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
  a[0] = op_pack<OP>(c0[0], c0[1]);
  a[1] = op_pack<OP>(c0[2], c0[3]);
  a[2] = op_pack<OP>(c1[0], c1[1]);
  a[3] = op_pack<OP>(c1[2], c1[3]);
}

// ---- forward ------------------------------------------------------------------------------------------------------
// grid (ceil(Tq / 64), NH, B). Warp w owns query rows i0 + 16w .. +15; lane (g, t) holds rows g and g + 8 of them.

template <int HSP, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void attn_fwd_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BQ = kAttnBQ, BK = kAttnBK, LDR = HSP + 8, LDT = BK + 8;
  constexpr int KC = HSP / 16, NT = BK / 8, DT = HSP / 8;
  uint16_t* Qs = reinterpret_cast<uint16_t*>(c.smem());  // [BQ][LDR]
  uint16_t* Ks = Qs + BQ * LDR;                          // [BK][LDR]
  uint16_t* Vt = Ks + BK * LDR;                          // [HSP][LDT]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int b = c.bz(), h = c.by(), i0 = c.bx() * BQ, kh = h / (p.NH / p.NKV);
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int64_t qstride = static_cast<int64_t>(p.NH) * p.HS, kstride = static_cast<int64_t>(p.NKV) * p.HS;
  const float* qbase = p.q + static_cast<int64_t>(b) * p.Tq * qstride + static_cast<int64_t>(h) * p.HS;
  const float* kbase = p.k + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS;
  const float* vbase = p.v + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS;
  const int i_last = imin(i0 + BQ, p.Tq) - 1;
  const int nk = imin(p.Tk - p.Tq + i_last + 1, len);  // keys visible to the tile's last row (the most)
  const int m0 = warp * 16;
  const int qi[2] = {i0 + m0 + g, i0 + m0 + g + 8};
  const int lim[2] = {imin(p.Tk - p.Tq + qi[0] + 1, len), imin(p.Tk - p.Tq + qi[1] + 1, len)};
  const float sl2 = p.scale * kLog2e;

  tile_rows<HSP, BQ, LDR, OP>(c, Qs, qbase, qstride, i0, p.Tq, p.HS);
  c.sync();
  uint32_t qf[KC][4];
  QT_UNROLL
  for (int kc = 0; kc < KC; kc++) frag_a<LDR>(qf[kc], Qs, m0, kc * 16, g, t);

  float o[DT][4];
  QT_UNROLL
  for (int dt = 0; dt < DT; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};

  for (int j0 = 0; j0 < nk; j0 += BK) {
    c.sync();  // every warp is done with the previous tile's Ks / Vt
    tile_rows<HSP, BK, LDR, OP>(c, Ks, kbase, kstride, j0, len, p.HS);
    tile_cols<HSP, BK, LDT, OP>(c, Vt, vbase, kstride, j0, len, p.HS);
    c.sync();
    float s[NT][4];
    QT_UNROLL
    for (int nt = 0; nt < NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
    QT_UNROLL
    for (int kc = 0; kc < KC; kc++) {
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) {
        uint32_t bf[2];
        frag_b<LDR>(bf, Ks, nt * 8, kc * 16, g, t);
        op_mma<OP>(c, s[nt], qf[kc], bf);
      }
    }
    // scale into the log2 domain, mask, and the tile's row maxima (rows g and g+8; a quad shares a row)
    float mx[2] = {-INFINITY, -INFINITY};
    QT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
      QT_UNROLL
      for (int e = 0; e < 4; e++) {
        const int j = j0 + nt * 8 + 2 * t + (e & 1);
        const float x = j < lim[e >> 1] ? s[nt][e] * sl2 : -INFINITY;
        s[nt][e] = x;
        mx[e >> 1] = fmax2(mx[e >> 1], x);
      }
    }
    float alpha[2];
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
      mx[r] = fmax2(mx[r], c.shfl_xor(mx[r], 1));
      mx[r] = fmax2(mx[r], c.shfl_xor(mx[r], 2));
      const float m_new = fmax2(mrow[r], mx[r]);
      alpha[r] = m_new == -INFINITY ? 1.0f : exp2f(mrow[r] - m_new);  // exp2(-inf) = 0 on the first visible tile
      mrow[r] = m_new;
    }
    float rs[2] = {0.0f, 0.0f};
    QT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
      QT_UNROLL
      for (int e = 0; e < 4; e++) {
        const float m = mrow[e >> 1];
        const float pr = m == -INFINITY ? 0.0f : exp2f(s[nt][e] - m);
        s[nt][e] = pr;
        rs[e >> 1] += pr;
      }
    }
    lrow[0] = lrow[0] * alpha[0] + rs[0];  // per-lane partial sums; the quad's are added at the end
    lrow[1] = lrow[1] * alpha[1] + rs[1];
    QT_UNROLL
    for (int dt = 0; dt < DT; dt++) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }
    QT_UNROLL
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t pa[4];
      c_to_a<OP>(pa, s[2 * kk], s[2 * kk + 1]);
      QT_UNROLL
      for (int dt = 0; dt < DT; dt++) {
        uint32_t bf[2];
        frag_b<LDT>(bf, Vt, dt * 8, kk * 16, g, t);
        op_mma<OP>(c, o[dt], pa, bf);
      }
    }
  }
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    lrow[r] += c.shfl_xor(lrow[r], 1);
    lrow[r] += c.shfl_xor(lrow[r], 2);
  }
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    const int i = qi[r];
    if (i >= p.Tq) continue;
    const float l = lrow[r], inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* orow = p.out + (static_cast<int64_t>(b) * p.Tq + i) * qstride + static_cast<int64_t>(h) * p.HS;
    QT_UNROLL
    for (int dt = 0; dt < DT; dt++) {
      const int d = dt * 8 + 2 * t;
      if (d < p.HS) {
        orow[d] = o[dt][2 * r] * inv;
        orow[d + 1] = o[dt][2 * r + 1] * inv;
      }
    }
    if (t == 0)
      p.lse[(static_cast<int64_t>(b) * p.NH + h) * p.Tq + i] = l > 0.0f ? (mrow[r] + log2f(l)) * kLn2 : -INFINITY;
  }
}

// ---- backward: dq -------------------------------------------------------------------------------------------------
// grid (ceil(Tq / 64), NH, B). For each key tile: S = Q K^T, dP = dO V^T, dS = P (dP - D) scale, dq += dS K.

template <int HSP, class Ctx>
QT_KFN void attn_dq_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BQ = kAttnBQ, BK = kAttnBK, LDR = HSP + 8, LDT = BK + 8;
  constexpr int KC = HSP / 16, NT = BK / 8, DT = HSP / 8;
  uint16_t* Qs = reinterpret_cast<uint16_t*>(c.smem());  // [BQ][LDR]
  uint16_t* dOs = Qs + BQ * LDR;                         // [BQ][LDR]
  uint16_t* Ks = dOs + BQ * LDR;                         // [BK][LDR]
  uint16_t* Vs = Ks + BK * LDR;                          // [BK][LDR]
  uint16_t* Kt = Vs + BK * LDR;                          // [HSP][LDT]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int b = c.bz(), h = c.by(), i0 = c.bx() * BQ, kh = h / (p.NH / p.NKV);
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int64_t qstride = static_cast<int64_t>(p.NH) * p.HS, kstride = static_cast<int64_t>(p.NKV) * p.HS;
  const int64_t qoff = static_cast<int64_t>(b) * p.Tq * qstride + static_cast<int64_t>(h) * p.HS;
  const float* kbase = p.k + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS;
  const float* vbase = p.v + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS;
  const int i_last = imin(i0 + BQ, p.Tq) - 1;
  const int nk = imin(p.Tk - p.Tq + i_last + 1, len);
  const int m0 = warp * 16;
  const int qi[2] = {i0 + m0 + g, i0 + m0 + g + 8};
  const int lim[2] = {imin(p.Tk - p.Tq + qi[0] + 1, len), imin(p.Tk - p.Tq + qi[1] + 1, len)};
  const float sl2 = p.scale * kLog2e;
  float lse2[2], Drow[2];
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    const bool in = qi[r] < p.Tq;
    const int64_t at = (static_cast<int64_t>(b) * p.NH + h) * p.Tq + qi[r];
    lse2[r] = in ? p.lse_in[at] * kLog2e : 0.0f;
    Drow[r] = in ? p.D[at] : 0.0f;
  }

  tile_rows<HSP, BQ, LDR>(c, Qs, p.q + qoff, qstride, i0, p.Tq, p.HS);
  tile_rows<HSP, BQ, LDR>(c, dOs, p.dout + qoff, qstride, i0, p.Tq, p.HS);
  float acc[DT][4];
  QT_UNROLL
  for (int dt = 0; dt < DT; dt++) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.0f;

  for (int j0 = 0; j0 < nk; j0 += BK) {
    c.sync();  // the previous tile's Ks / Vs / Kt are no longer read (and Qs, dOs are complete)
    tile_rows<HSP, BK, LDR>(c, Ks, kbase, kstride, j0, len, p.HS);
    tile_rows<HSP, BK, LDR>(c, Vs, vbase, kstride, j0, len, p.HS);
    tile_cols<HSP, BK, LDT>(c, Kt, kbase, kstride, j0, len, p.HS);
    c.sync();
    float s[NT][4], dp[NT][4];
    QT_UNROLL
    for (int nt = 0; nt < NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = dp[nt][0] = dp[nt][1] = dp[nt][2] = dp[nt][3] = 0.0f;
    QT_UNROLL
    for (int kc = 0; kc < KC; kc++) {
      uint32_t qa[4], da[4];
      frag_a<LDR>(qa, Qs, m0, kc * 16, g, t);
      frag_a<LDR>(da, dOs, m0, kc * 16, g, t);
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) {
        uint32_t bk[2], bv[2];
        frag_b<LDR>(bk, Ks, nt * 8, kc * 16, g, t);
        frag_b<LDR>(bv, Vs, nt * 8, kc * 16, g, t);
        c.mma_bf16(s[nt], qa, bk);
        c.mma_bf16(dp[nt], da, bv);
      }
    }
    QT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
      QT_UNROLL
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, j = j0 + nt * 8 + 2 * t + (e & 1);
        const float pr = j < lim[r] ? exp2f(s[nt][e] * sl2 - lse2[r]) : 0.0f;
        s[nt][e] = pr * (dp[nt][e] - Drow[r]) * p.scale;  // dS
      }
    }
    QT_UNROLL
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t sa[4];
      c_to_a(sa, s[2 * kk], s[2 * kk + 1]);
      QT_UNROLL
      for (int dt = 0; dt < DT; dt++) {
        uint32_t bf[2];
        frag_b<LDT>(bf, Kt, dt * 8, kk * 16, g, t);
        c.mma_bf16(acc[dt], sa, bf);
      }
    }
  }
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    if (qi[r] >= p.Tq) continue;
    float* row = p.dq + qoff + static_cast<int64_t>(qi[r]) * qstride;
    QT_UNROLL
    for (int dt = 0; dt < DT; dt++) {
      const int d = dt * 8 + 2 * t;
      if (d < p.HS) {
        row[d] += acc[dt][2 * r];
        row[d + 1] += acc[dt][2 * r + 1];
      }
    }
  }
}

// ---- backward: dk, dv ---------------------------------------------------------------------------------------------
// grid (ceil(Tk / 64), NKV, B). Warp w owns keys j0 + 16w .. +15. For each query head of the KV group and each
// 32-query step from the first query that sees the block: S^T = K Q^T, dP^T = V dO^T, P^T, dS^T,
// dv += P^T dO, dk += dS^T Q.

template <int HSP, class Ctx>
QT_KFN void attn_dkv_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BK = kAttnBK, BQ2 = kAttnBQ2, LDR = HSP + 8, LDT = BQ2 + 8;
  constexpr int KC = HSP / 16, NT = BQ2 / 8, DT = HSP / 8;
  uint16_t* Ks = reinterpret_cast<uint16_t*>(c.smem());  // [BK][LDR]
  uint16_t* Vs = Ks + BK * LDR;                          // [BK][LDR]
  uint16_t* Qs = Vs + BK * LDR;                          // [BQ2][LDR]
  uint16_t* dOs = Qs + BQ2 * LDR;                        // [BQ2][LDR]
  uint16_t* Qt = dOs + BQ2 * LDR;                        // [HSP][LDT]
  uint16_t* dOt = Qt + HSP * LDT;                        // [HSP][LDT]
  float* lse2s = reinterpret_cast<float*>(dOt + HSP * LDT);  // [BQ2]
  float* Ds = lse2s + BQ2;                                    // [BQ2]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int b = c.bz(), kh = c.by(), j0 = c.bx() * BK, group = p.NH / p.NKV;
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  if (j0 >= len) return;  // no query sees these keys (the whole block leaves before any barrier)
  const int64_t qstride = static_cast<int64_t>(p.NH) * p.HS, kstride = static_cast<int64_t>(p.NKV) * p.HS;
  const int64_t koff = static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * p.HS;
  const int m0 = warp * 16;
  const int kj[2] = {j0 + m0 + g, j0 + m0 + g + 8};  // this lane's two key rows
  const float sl2 = p.scale * kLog2e;

  tile_rows<HSP, BK, LDR>(c, Ks, p.k + koff, kstride, j0, len, p.HS);
  tile_rows<HSP, BK, LDR>(c, Vs, p.v + koff, kstride, j0, len, p.HS);
  float dk[DT][4], dv[DT][4];
  QT_UNROLL
  for (int dt = 0; dt < DT; dt++) dk[dt][0] = dk[dt][1] = dk[dt][2] = dk[dt][3] = dv[dt][0] = dv[dt][1] = dv[dt][2] = dv[dt][3] = 0.0f;
  const int i_first = imax(0, j0 - (p.Tk - p.Tq));  // the first query whose position reaches key j0

  for (int h = kh * group; h < (kh + 1) * group; h++) {
    const int64_t qoff = static_cast<int64_t>(b) * p.Tq * qstride + static_cast<int64_t>(h) * p.HS;
    for (int i0 = i_first / BQ2 * BQ2; i0 < p.Tq; i0 += BQ2) {
      c.sync();  // the previous step's Qs, dOs, Qt, dOt, lse2s, Ds are no longer read (Ks, Vs complete)
      tile_rows<HSP, BQ2, LDR>(c, Qs, p.q + qoff, qstride, i0, p.Tq, p.HS);
      tile_rows<HSP, BQ2, LDR>(c, dOs, p.dout + qoff, qstride, i0, p.Tq, p.HS);
      tile_cols<HSP, BQ2, LDT>(c, Qt, p.q + qoff, qstride, i0, p.Tq, p.HS);
      tile_cols<HSP, BQ2, LDT>(c, dOt, p.dout + qoff, qstride, i0, p.Tq, p.HS);
      if (tid < BQ2) {
        const int i = i0 + tid;
        const int64_t at = (static_cast<int64_t>(b) * p.NH + h) * p.Tq + i;
        lse2s[tid] = i < p.Tq ? p.lse_in[at] * kLog2e : 0.0f;
        Ds[tid] = i < p.Tq ? p.D[at] : 0.0f;
      }
      c.sync();
      float s[NT][4], dp[NT][4];
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = dp[nt][0] = dp[nt][1] = dp[nt][2] = dp[nt][3] = 0.0f;
      QT_UNROLL
      for (int kc = 0; kc < KC; kc++) {
        uint32_t ka[4], va[4];
        frag_a<LDR>(ka, Ks, m0, kc * 16, g, t);
        frag_a<LDR>(va, Vs, m0, kc * 16, g, t);
        QT_UNROLL
        for (int nt = 0; nt < NT; nt++) {
          uint32_t bq[2], bo[2];
          frag_b<LDR>(bq, Qs, nt * 8, kc * 16, g, t);
          frag_b<LDR>(bo, dOs, nt * 8, kc * 16, g, t);
          c.mma_bf16(s[nt], ka, bq);   // S^T[key][query]
          c.mma_bf16(dp[nt], va, bo);  // dP^T[key][query]
        }
      }
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) {
        QT_UNROLL
        for (int e = 0; e < 4; e++) {
          const int col = nt * 8 + 2 * t + (e & 1), i = i0 + col, j = kj[e >> 1];
          const bool vis = i < p.Tq && j < imin(p.Tk - p.Tq + i + 1, len);
          const float pr = vis ? exp2f(s[nt][e] * sl2 - lse2s[col]) : 0.0f;
          s[nt][e] = pr;                                   // P^T
          dp[nt][e] = pr * (dp[nt][e] - Ds[col]) * p.scale;  // dS^T
        }
      }
      QT_UNROLL
      for (int kk = 0; kk < BQ2 / 16; kk++) {
        uint32_t pa[4], sa[4];
        c_to_a(pa, s[2 * kk], s[2 * kk + 1]);
        c_to_a(sa, dp[2 * kk], dp[2 * kk + 1]);
        QT_UNROLL
        for (int dt = 0; dt < DT; dt++) {
          uint32_t bo[2], bq[2];
          frag_b<LDT>(bo, dOt, dt * 8, kk * 16, g, t);
          frag_b<LDT>(bq, Qt, dt * 8, kk * 16, g, t);
          c.mma_bf16(dv[dt], pa, bo);
          c.mma_bf16(dk[dt], sa, bq);
        }
      }
    }
  }
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    if (kj[r] >= p.Tk) continue;
    float* krow = p.dk + koff + static_cast<int64_t>(kj[r]) * kstride;
    float* vrow = p.dv + koff + static_cast<int64_t>(kj[r]) * kstride;
    QT_UNROLL
    for (int dt = 0; dt < DT; dt++) {
      const int d = dt * 8 + 2 * t;
      if (d < p.HS) {
        krow[d] += dk[dt][2 * r];
        krow[d + 1] += dk[dt][2 * r + 1];
        vrow[d] += dv[dt][2 * r];
        vrow[d + 1] += dv[dt][2 * r + 1];
      }
    }
  }
}

}  // namespace qt::kern
