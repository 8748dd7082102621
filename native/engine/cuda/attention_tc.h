// Tensor-core flash attention (FlashAttention-2, Dao 2023) for the CUDA backend: 16-bit operands on mma.sync
// m16n8k16 with fp32 accumulation, the online softmax in fp32, causal + GQA + right padding, the row log-sum-exp kept
// for backward. Backward is deterministic without atomics, as the SIMT version in attention.cu: one kernel accumulates
// dq per query tile (walking key tiles), another dk/dv per key tile (walking the query heads of its KV group and their
// query tiles); each recomputes P = exp(S - lse).
// Operands: the forward multiplies fp16 (TcOp::F16, QT_CUDA_ATTN=tc16, the default since run 3: 8x finer rounding than
// bf16, for the accuracy of the logits) or bf16 (tc); the backward bf16 (its dS products span a range fp16 would
// underflow).
// Run 11 (FA2's data movement): the host converts q, k, v (and dout) once per call into 16-bit copies whose heads are
// padded to HSP (attn_pad16), so the kernels copy tiles with cp.async (16-byte chunks, no conversion, no bounds on
// columns), double-buffer the key/value (or query/dout) tiles so the next tile's copy overlaps this tile's products,
// and read every fragment with ldmatrix (.trans where the operand runs along the rows: no transposed copies). With
// fewer blocks than the GPU has room for, the dk/dv kernel runs one block per query head (dkv_split) and writes
// per-head partial gradients that attention.cu then sums over the KV group, in a fixed order.
//
// The bodies are templates over the kernel context (kernel_ctx.h): attention.cu launches them on the GPU,
// native/tests runs them in the warp simulator against cpu/attention.cpp.
//
// Layouts (backend.h): out/dq [B, Tq, NH, HS], dk/dv [B, Tk, NKV, HS], lse/D [B, NH, Tq], fp32; the 16-bit copies
// q/dout [B, Tq, NH, HSP], k/v [B, Tk, NKV, HSP] (columns >= HS zero). Query i sits at position Tk - Tq + i and sees
// keys j < min(Tk - Tq + i + 1, length[b]).
//
// Tiles: 4 warps (128 threads); every warp owns 16 rows of the block's tile. HSP = head size padded to 32, 64 or 128.
// Shared-memory tiles are row-major [row][d], rows padded by 8 elements (16 bytes), so the 8 row addresses of an
// ldmatrix hit 8 different 16-byte bank groups.
//
// mma.sync m16n8k16 fragments (PTX ISA), lane = 4 g + t:
//   A 16x16: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)   [row, col pair]
//   B 16x8:  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C 16x8:  c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
// so the C fragments of two adjacent 8-column tiles are, packed to 16-bit pairs, the A fragment of the next product over
// those 16 columns (FA2's register reuse of P).
#pragma once

#include <cmath>

#include "kernel_ctx.h"

namespace qt::kern {

struct AttnArgs {
  float* out = nullptr;        // forward: [B, Tq, NH, HS]
  float* lse = nullptr;        // forward: [B, NH, Tq]
  float* dq = nullptr;         // backward (+=)
  float* dk = nullptr;         // backward: += into [B, Tk, NKV, HS]; with dkv_split, = into partials [B, Tk, NH, HS]
  float* dv = nullptr;         // likewise
  const uint16_t* q = nullptr;     // 16-bit copies, heads padded to HSP (attn_pad16)
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  const uint16_t* dout = nullptr;  // backward
  const float* lse_in = nullptr;   // backward: the forward's lse
  const float* D = nullptr;        // backward: D[b, h, i] = dout_i . out_i
  const int32_t* lengths = nullptr;
  // backward, QT_CUDA_ATTN_DS (Tq == Tk): dS = P (dP - D) scale in bf16, 64 x 64 tiles [query][key] of the lower
  // triangle, tile (it, jt <= it) of (b, h) at ((b NH + h) attn_ds_tiles(Tq) + it (it + 1) / 2 + jt) 4096; written by
  // the dk/dv pass, read by attn_dq_ds_tc (which then multiplies dS K alone instead of recomputing S, P and dP)
  uint16_t* ds = nullptr;
  int B = 0, Tq = 0, Tk = 0, NH = 0, NKV = 0, HS = 0;
  float scale = 0;         // 1 / sqrt(HS)
  bool dkv_split = false;  // dk/dv grid over query heads (partials) instead of KV heads
};

constexpr int kAttnThreads = 128;
constexpr int kAttnFwdMT = 2;  // 16-row m-tiles per warp in the forward (default; 1 = run 11's first version)
constexpr int kAttnBQ = 64;   // query rows per dq block
constexpr int kAttnBK = 64;   // keys per tile (forward, dq) and per block (dk/dv)
constexpr int kAttnBQ2 = 32;  // query rows per step of the dk/dv kernel
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

/** Shared memory (bytes) of each kernel for a padded head size: 16-bit tiles of HSP + 8 columns; the key/value tiles of
 *  forward and dq, and the query/dout tiles (with their lse and D) of dk/dv, twice (double buffering). */
constexpr int attn_fwd_rows(int MT) { return 64 * MT; }  // query rows per forward block
constexpr int attn_fwd_smem(int HSP, int MT = kAttnFwdMT) { return 2 * (attn_fwd_rows(MT) + 4 * kAttnBK) * (HSP + 8); }
constexpr int attn_dq_smem(int HSP) { return 2 * (2 * kAttnBQ + 4 * kAttnBK) * (HSP + 8); }
constexpr int attn_dkv_smem(int HSP) { return 2 * (2 * kAttnBK + 4 * kAttnBQ2) * (HSP + 8) + 4 * kAttnBQ2 * 4; }
constexpr int kAttnDsLd = kAttnBK + 8;  // bf16 per row of a staged dS tile (rows padded as the other tiles)
/** The dk/dv pass storing dS: + a [BQ2][BK] bf16 staging tile. */
constexpr int attn_dkv_ds_smem(int HSP) { return attn_dkv_smem(HSP) + kAttnBQ2 * kAttnDsLd * 2; }
/** dq from stored dS: K and dS tiles, double-buffered. */
constexpr int attn_dq_ds_smem(int HSP) { return 2 * (2 * kAttnBK * (HSP + 8) + 2 * kAttnBQ * kAttnDsLd); }
/** The longest sequence whose backward stores dS (QT_CUDA_ATTN_DS): the tiles grow with T^2 per row, so longer ones
 *  take the dq kernel that recomputes dS and keep the workspace linear in the tokens. At T <= 1024 the tiles cost at most
 *  NH * 1088 bytes per token (285 MB for Llama-3-8B at 8 x 1024); one 32K-token row would need 34 GB. */
constexpr int kAttnDsMaxT = 1024;
/** dS tiles of the lower triangle of a T x T score matrix (64 x 64 each). */
QT_KFN int64_t attn_ds_tiles(int T) {
  const int64_t n = (T + kAttnBK - 1) / kAttnBK;
  return n * (n + 1) / 2;
}

/** Operand type of the FORWARD kernel's tensor-core products (Q K^T and P V): fp16 (tc16, default) or bf16 (tc). fp16
 *  conversions saturate at +-65504 (never inf); a Llama's q, k, v are orders of magnitude smaller and P <= 1. */
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

/** The 16-bit copy's 8 elements at chunk `ch` of row `row` (the element index divided by 8): src row `row` columns
 *  8 ch .. 8 ch + 7, rounded (nearest even), 0 at columns >= HS. attn_pad16 (attention.cu) and the simulator tests. */
template <TcOp OP>
QT_KFN U4 pad16_chunk(const float* src, int64_t row, int ch, int HS) {
  float x[8];
  for (int e = 0; e < 8; e++) {
    const int d = 8 * ch + e;
    x[e] = d < HS ? src[row * HS + d] : 0.0f;
  }
  return U4{op_pack<OP>(x[0], x[1]), op_pack<OP>(x[2], x[3]), op_pack<OP>(x[4], x[5]), op_pack<OP>(x[6], x[7])};
}

// ---- tiles and fragments ------------------------------------------------------------------------------------------

/** dst[r][0..HSP) (row stride HSP + 8) = source row p0 + r (base + p * stride), by cp.async; zeros where p >= limit. */
template <int HSP, int ROWS, class Ctx>
QT_KFN void tile_async(Ctx& c, uint16_t* dst, const uint16_t* base, int64_t stride, int p0, int limit) {
  constexpr int CH = HSP / 8, LD = HSP + 8;
  for (int e = c.tid(); e < ROWS * CH; e += kAttnThreads) {
    const int r = e / CH, ch = e % CH, p = p0 + r;
    const bool in = p < limit;
    c.cp_async16(dst + r * LD + ch * 8, in ? base + static_cast<int64_t>(p) * stride + ch * 8 : base, in);
  }
}

/** The top of a step of the forward's and dq's double-buffered key loop: waits until key/value tile jt (copied into
 *  buffer jt & 1 during the step before) has landed for every thread and no warp still reads buffer (jt + 1) & 1, then
 *  starts copying tile jt + 1 there, so that it lands while tile jt is multiplied. */
template <int HSP, int BK, class Ctx>
QT_KFN void kv_next_tile(Ctx& c, int jt, int ntiles, uint16_t* Ks, uint16_t* Vs, const uint16_t* kbase, const uint16_t* vbase,
                         int64_t kstride, int len) {
  constexpr int LD = HSP + 8;
  c.cp_async_wait_all();  // this thread's copies of tile jt have landed ...
  c.sync();               // ... everyone's have, and every warp is done with tile jt - 1's buffers
  if (jt + 1 >= ntiles) return;
  const int nb = (jt + 1) & 1;
  tile_async<HSP, BK>(c, Ks + nb * BK * LD, kbase, kstride, (jt + 1) * BK, len);
  tile_async<HSP, BK>(c, Vs + nb * BK * LD, vbase, kstride, (jt + 1) * BK, len);
  c.cp_async_commit();
}

/** A fragment of rows m0..m0+15, columns k0..k0+15 of a row-major tile. */
template <int LD, class Ctx>
QT_KFN void ldsm_a(Ctx& c, uint32_t a[4], const uint16_t* s, int m0, int k0, int lane) {
  c.ldsm_x4(a, s + (m0 + (lane & 15)) * LD + k0 + (lane >> 4) * 8);
}

/** B fragments (k0..k0+15) of the 8-column tiles n0 (b[0], b[1]) and n0 + 8 (b[2], b[3]) of an operand stored [n][k]. */
template <int LD, class Ctx>
QT_KFN void ldsm_b2(Ctx& c, uint32_t b[4], const uint16_t* s, int n0, int k0, int lane) {
  const int i = lane >> 3, r = lane & 7;
  c.ldsm_x4(b, s + (n0 + (i >> 1) * 8 + r) * LD + k0 + (i & 1) * 8);
}

/** The same for an operand stored [k][n] (ldmatrix .trans). */
template <int LD, class Ctx>
QT_KFN void ldsm_bt2(Ctx& c, uint32_t b[4], const uint16_t* s, int k0, int n0, int lane) {
  const int i = lane >> 3, r = lane & 7;
  c.ldsm_x4_t(b, s + (k0 + (i & 1) * 8 + r) * LD + n0 + (i >> 1) * 8);
}

/** The C fragments of 8-column tiles 2kk and 2kk+1 as the 16-bit A fragment over those 16 columns. fp16 is only ever
 *  the forward's probabilities (<= 1): packed without the clamp. */
template <TcOp OP = TcOp::BF16>
QT_KFN uint32_t c_pack(float lo, float hi) { return OP == TcOp::F16 ? pack_f16_rn(lo, hi) : pack_bf16(lo, hi); }
template <TcOp OP = TcOp::BF16>
QT_KFN void c_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
  a[0] = c_pack<OP>(c0[0], c0[1]);
  a[1] = c_pack<OP>(c0[2], c0[3]);
  a[2] = c_pack<OP>(c1[0], c1[1]);
  a[3] = c_pack<OP>(c1[2], c1[3]);
}

/** acc[m][n0] and acc[m][n0 + 1] += a[m] times the B fragments of two 8-column tiles (bb[0..1], bb[2..3]), for every
 *  m-tile m. */
template <int MT, int N, TcOp OP, class Ctx>
QT_KFN void mma_b_pair(Ctx& c, float (*acc)[N][4], int n0, const uint32_t (*a)[4], const uint32_t bb[4]) {
  QT_UNROLL
  for (int mt = 0; mt < MT; mt++) {
    op_mma<OP>(c, acc[mt][n0], a[mt], bb);
    op_mma<OP>(c, acc[mt][n0 + 1], a[mt], bb + 2);
  }
}

/** acc[m][NT 8-column tiles] += A_m (16 x 16 KC) B for MT m-tiles m, A_m's fragments from rows m0[m].. of a row-major
 *  tile, B's from a tile stored [n][k] (n0 = 0..8 NT): each B fragment is read once for the MT products. */
template <int LD, int KC, int NT, int MT, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void mma_rows_nk_mt(Ctx& c, float (*acc)[NT][4], const uint16_t* As, const int* m0, const uint16_t* Bs, int lane) {
  QT_UNROLL
  for (int kc = 0; kc < KC; kc++) {
    uint32_t a[MT][4];
    QT_UNROLL
    for (int mt = 0; mt < MT; mt++) ldsm_a<LD>(c, a[mt], As, m0[mt], kc * 16, lane);
    QT_UNROLL
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t bb[4];
      ldsm_b2<LD>(c, bb, Bs, nt * 8, kc * 16, lane);
      mma_b_pair<MT, NT, OP>(c, acc, nt, a, bb);
    }
  }
}

/** acc[m][DT 8-column tiles] += P_m (16 x 16 KK, as C fragments pc[m][2 KK][4]) B for MT m-tiles, B's fragments from a
 *  tile stored [k][n], each read once for the MT products. */
template <int LD, int KK, int DT, int MT, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void mma_p_kn_mt(Ctx& c, float (*acc)[DT][4], const float (*pc)[2 * KK][4], const uint16_t* Bs, int lane) {
  QT_UNROLL
  for (int kk = 0; kk < KK; kk++) {
    uint32_t pa[MT][4];
    QT_UNROLL
    for (int mt = 0; mt < MT; mt++) c_to_a<OP>(pa[mt], pc[mt][2 * kk], pc[mt][2 * kk + 1]);
    QT_UNROLL
    for (int dt = 0; dt < DT; dt += 2) {
      uint32_t bb[4];
      ldsm_bt2<LD>(c, bb, Bs, kk * 16, dt * 8, lane);
      mma_b_pair<MT, DT, OP>(c, acc, dt, pa, bb);
    }
  }
}

/** The one-m-tile forms (backward kernels): acc[NT][4] for the warp's 16 rows from m0. */
template <int LD, int KC, int NT, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void mma_rows_nk(Ctx& c, float acc[][4], const uint16_t* As, int m0, const uint16_t* Bs, int lane) {
  mma_rows_nk_mt<LD, KC, NT, 1, OP>(c, reinterpret_cast<float(*)[NT][4]>(acc), As, &m0, Bs, lane);
}
template <int LD, int KK, int DT, TcOp OP = TcOp::BF16, class Ctx>
QT_KFN void mma_p_kn(Ctx& c, float acc[][4], const float pc[][4], const uint16_t* Bs, int lane) {
  mma_p_kn_mt<LD, KK, DT, 1, OP>(c, reinterpret_cast<float(*)[DT][4]>(acc), reinterpret_cast<const float(*)[2 * KK][4]>(pc), Bs,
                                 lane);
}

template <int N>
QT_KFN void zero_frags(float f[][4]) {
  QT_UNROLL
  for (int i = 0; i < N; i++) f[i][0] = f[i][1] = f[i][2] = f[i][3] = 0.0f;
}

// ---- forward ------------------------------------------------------------------------------------------------------
// grid (ceil(Tq / 64 MT), NH, B). Warp w owns query rows i0 + 16 w + 64 m .. +15 of its MT m-tiles m (MT = 2: FA2's
// kBlockM = 128 with 4 warps): each K or V fragment read from shared memory feeds MT products, which divides the
// shared-memory traffic per product by MT (with one m-tile per warp it was the forward's limit, run 11). Lane (g, t)
// holds rows g and g + 8 of each m-tile.

template <int HSP, TcOp OP = TcOp::BF16, int MT = kAttnFwdMT, class Ctx>
QT_KFN void attn_fwd_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BQ = 64 * MT, BK = kAttnBK, LD = HSP + 8;  // attn_fwd_rows(MT)
  constexpr int KC = HSP / 16, NT = BK / 8, DT = HSP / 8;
  uint16_t* Qs = reinterpret_cast<uint16_t*>(c.smem());  // [BQ][LD]
  uint16_t* Ks = Qs + BQ * LD;                           // [2][BK][LD]
  uint16_t* Vs = Ks + 2 * BK * LD;                       // [2][BK][LD]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int b = c.bz(), h = c.by(), i0 = c.bx() * BQ, kh = h / (p.NH / p.NKV);
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int64_t qstride = static_cast<int64_t>(p.NH) * HSP, kstride = static_cast<int64_t>(p.NKV) * HSP;
  const uint16_t* qbase = p.q + static_cast<int64_t>(b) * p.Tq * qstride + static_cast<int64_t>(h) * HSP;
  const uint16_t* kbase = p.k + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * HSP;
  const uint16_t* vbase = p.v + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * HSP;
  const int i_last = imin(i0 + BQ, p.Tq) - 1;
  const int nk = imin(p.Tk - p.Tq + i_last + 1, len);  // keys visible to the tile's last row (the most)
  const int ntiles = nk > 0 ? (nk + BK - 1) / BK : 0;
  int qi[MT][2], lim[MT][2], m0[MT];
  QT_UNROLL
  for (int mt = 0; mt < MT; mt++) {
    m0[mt] = 16 * warp + 64 * mt;
    qi[mt][0] = i0 + m0[mt] + g;
    qi[mt][1] = qi[mt][0] + 8;
    lim[mt][0] = imin(p.Tk - p.Tq + qi[mt][0] + 1, len);
    lim[mt][1] = imin(p.Tk - p.Tq + qi[mt][1] + 1, len);
  }
  // the keys every row of the warp sees (its first row's); with m-tiles 64 rows apart every warp has rows in each key tile
  // the block visits, so none skips one
  const int warp_open = imin(p.Tk - p.Tq + i0 + 16 * warp + 1, len);
  const float sl2 = p.scale * kLog2e;

  tile_async<HSP, BQ>(c, Qs, qbase, qstride, i0, p.Tq);
  if (ntiles > 0) {
    tile_async<HSP, BK>(c, Ks, kbase, kstride, 0, len);
    tile_async<HSP, BK>(c, Vs, vbase, kstride, 0, len);
  }
  c.cp_async_commit();

  float o[MT][DT][4];
  float mrow[MT][2], lrow[MT][2];
  QT_UNROLL
  for (int mt = 0; mt < MT; mt++) {
    zero_frags<DT>(o[mt]);
    mrow[mt][0] = mrow[mt][1] = -INFINITY;
    lrow[mt][0] = lrow[mt][1] = 0.0f;
  }

  for (int jt = 0; jt < ntiles; jt++) {
    const int j0 = jt * BK;
    kv_next_tile<HSP, BK>(c, jt, ntiles, Ks, Vs, kbase, vbase, kstride, len);  // tile jt (and Q) in; jt + 1 on its way
    const uint16_t* Kb = Ks + (jt & 1) * BK * LD;
    const uint16_t* Vb = Vs + (jt & 1) * BK * LD;
    float s[MT][NT][4];
    QT_UNROLL
    for (int mt = 0; mt < MT; mt++) zero_frags<NT>(s[mt]);
    mma_rows_nk_mt<LD, KC, NT, MT, OP>(c, s, Qs, m0, Kb, lane);  // each K fragment feeds the MT m-tiles
    // Online softmax on the raw scores (FA2's instruction diet): the mask only on tiles some row of the warp does not
    // fully see, row maxima of raw scores, and p = exp2(s sl2 - m sl2) as one FFMA and one EX2 per score. A row that
    // has seen nothing yet has m = -inf: its offset is taken as 0, so its masked scores give exp2(-inf) = 0.
    const bool open = j0 + BK <= warp_open;  // every key of the tile visible to every row of the warp
    QT_UNROLL
    for (int mt = 0; mt < MT; mt++) {
      if (!open) {
        QT_UNROLL
        for (int nt = 0; nt < NT; nt++) {
          QT_UNROLL
          for (int e = 0; e < 4; e++)
            if (j0 + nt * 8 + 2 * t + (e & 1) >= lim[mt][e >> 1]) s[mt][nt][e] = -INFINITY;
        }
      }
      float mx[2] = {-INFINITY, -INFINITY};  // the tile's row maxima (rows g and g+8; a quad shares a row)
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) {
        QT_UNROLL
        for (int e = 0; e < 4; e++) mx[e >> 1] = fmax2(mx[e >> 1], s[mt][nt][e]);
      }
      float alpha[2], ms[2];
      QT_UNROLL
      for (int r = 0; r < 2; r++) {
        mx[r] = fmax2(mx[r], c.shfl_xor(mx[r], 1));
        mx[r] = fmax2(mx[r], c.shfl_xor(mx[r], 2));
        const float m_new = fmax2(mrow[mt][r], mx[r]);
        ms[r] = m_new == -INFINITY ? 0.0f : m_new * sl2;
        alpha[r] = exp2f(fmaf(mrow[mt][r], sl2, -ms[r]));  // 0 while the row had seen nothing (o and l are 0 then)
        mrow[mt][r] = m_new;
      }
      float rs[2] = {0.0f, 0.0f};
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) {
        QT_UNROLL
        for (int e = 0; e < 4; e++) {
          const float pr = exp2f(fmaf(s[mt][nt][e], sl2, -ms[e >> 1]));
          s[mt][nt][e] = pr;
          rs[e >> 1] += pr;
        }
      }
      lrow[mt][0] = lrow[mt][0] * alpha[0] + rs[0];  // per-lane partial sums; the quad's are added at the end
      lrow[mt][1] = lrow[mt][1] * alpha[1] + rs[1];
      QT_UNROLL
      for (int dt = 0; dt < DT; dt++) {
        o[mt][dt][0] *= alpha[0];
        o[mt][dt][1] *= alpha[0];
        o[mt][dt][2] *= alpha[1];
        o[mt][dt][3] *= alpha[1];
      }
    }
    mma_p_kn_mt<LD, BK / 16, DT, MT, OP>(c, o, s, Vb, lane);  // o += P V, each V fragment (.trans) feeding the m-tiles
  }
  c.cp_async_wait_all();  // no copy outlives the block (the Q copy when no key is visible)
  const int64_t ostride = static_cast<int64_t>(p.NH) * p.HS;
  QT_UNROLL
  for (int mt = 0; mt < MT; mt++) {
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
      lrow[mt][r] += c.shfl_xor(lrow[mt][r], 1);
      lrow[mt][r] += c.shfl_xor(lrow[mt][r], 2);
    }
    QT_UNROLL
    for (int r = 0; r < 2; r++) {
      const int i = qi[mt][r];
      if (i >= p.Tq) continue;
      const float l = lrow[mt][r], inv = l > 0.0f ? 1.0f / l : 0.0f;
      float* orow = p.out + (static_cast<int64_t>(b) * p.Tq + i) * ostride + static_cast<int64_t>(h) * p.HS;
      QT_UNROLL
      for (int dt = 0; dt < DT; dt++) {
        const int d = dt * 8 + 2 * t;
        if (d < p.HS) {
          orow[d] = o[mt][dt][2 * r] * inv;
          orow[d + 1] = o[mt][dt][2 * r + 1] * inv;
        }
      }
      if (t == 0)  // mrow holds raw scores: lse = ln(l) + m scale
        p.lse[(static_cast<int64_t>(b) * p.NH + h) * p.Tq + i] = l > 0.0f ? (mrow[mt][r] * sl2 + log2f(l)) * kLn2 : -INFINITY;
    }
  }
}

/** The dq kernels' end: dq rows i and i + 8 of query head h (this lane's rows g and g + 8 of its warp's 16) += the
 *  warp's accumulated fragments acc[DT][4] (columns 8 dt + 2t and 8 dt + 2t + 1). */
template <int DT>
QT_KFN void dq_add_rows(const AttnArgs& p, const float (*acc)[4], int b, int h, int i, int t) {
  const int64_t ostride = static_cast<int64_t>(p.NH) * p.HS;
  const int64_t ooff = static_cast<int64_t>(b) * p.Tq * ostride + static_cast<int64_t>(h) * p.HS;
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    if (i + 8 * r >= p.Tq) continue;
    float* row = p.dq + ooff + static_cast<int64_t>(i + 8 * r) * ostride;
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

// ---- backward: dq -------------------------------------------------------------------------------------------------
// grid (ceil(Tq / 64), NH, B). For each key tile: S = Q K^T, dP = dO V^T, dS = P (dP - D) scale, dq += dS K.

template <int HSP, class Ctx>
QT_KFN void attn_dq_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BQ = kAttnBQ, BK = kAttnBK, LD = HSP + 8;
  constexpr int KC = HSP / 16, NT = BK / 8, DT = HSP / 8;
  uint16_t* Qs = reinterpret_cast<uint16_t*>(c.smem());  // [BQ][LD]
  uint16_t* dOs = Qs + BQ * LD;                          // [BQ][LD]
  uint16_t* Ks = dOs + BQ * LD;                          // [2][BK][LD]
  uint16_t* Vs = Ks + 2 * BK * LD;                       // [2][BK][LD]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int b = c.bz(), h = c.by(), i0 = c.bx() * BQ, kh = h / (p.NH / p.NKV);
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int64_t qstride = static_cast<int64_t>(p.NH) * HSP, kstride = static_cast<int64_t>(p.NKV) * HSP;
  const int64_t qoff = static_cast<int64_t>(b) * p.Tq * qstride + static_cast<int64_t>(h) * HSP;
  const uint16_t* kbase = p.k + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * HSP;
  const uint16_t* vbase = p.v + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * HSP;
  const int i_last = imin(i0 + BQ, p.Tq) - 1;
  const int nk = imin(p.Tk - p.Tq + i_last + 1, len);
  const int ntiles = nk > 0 ? (nk + BK - 1) / BK : 0;
  const int m0 = warp * 16;
  const int qi[2] = {i0 + m0 + g, i0 + m0 + g + 8};
  const int lim[2] = {imin(p.Tk - p.Tq + qi[0] + 1, len), imin(p.Tk - p.Tq + qi[1] + 1, len)};
  const int warp_open = imin(p.Tk - p.Tq + i0 + m0 + 1, len);  // keys the warp's first (most masked) row sees
  const float sl2 = p.scale * kLog2e;
  float lse2[2], Drow[2];
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    const bool in = qi[r] < p.Tq;
    const int64_t at = (static_cast<int64_t>(b) * p.NH + h) * p.Tq + qi[r];
    lse2[r] = in ? p.lse_in[at] * kLog2e : 0.0f;
    Drow[r] = in ? p.D[at] : 0.0f;
  }

  tile_async<HSP, BQ>(c, Qs, p.q + qoff, qstride, i0, p.Tq);
  tile_async<HSP, BQ>(c, dOs, p.dout + qoff, qstride, i0, p.Tq);
  if (ntiles > 0) {
    tile_async<HSP, BK>(c, Ks, kbase, kstride, 0, len);
    tile_async<HSP, BK>(c, Vs, vbase, kstride, 0, len);
  }
  c.cp_async_commit();
  float acc[DT][4];
  zero_frags<DT>(acc);

  for (int jt = 0; jt < ntiles; jt++) {
    const int j0 = jt * BK;
    kv_next_tile<HSP, BK>(c, jt, ntiles, Ks, Vs, kbase, vbase, kstride, len);  // tile jt (and Q, dO) in; jt + 1 on its way
    const uint16_t* Kb = Ks + (jt & 1) * BK * LD;
    const uint16_t* Vb = Vs + (jt & 1) * BK * LD;
    float s[NT][4], dp[NT][4];
    zero_frags<NT>(s);
    zero_frags<NT>(dp);
    mma_rows_nk<LD, KC, NT>(c, s, Qs, m0, Kb, lane);
    mma_rows_nk<LD, KC, NT>(c, dp, dOs, m0, Vb, lane);
    const bool open = j0 + BK <= warp_open;  // every key of the tile visible to every row of the warp: no mask
    QT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
      QT_UNROLL
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, j = j0 + nt * 8 + 2 * t + (e & 1);
        const float pr = open || j < lim[r] ? exp2f(fmaf(s[nt][e], sl2, -lse2[r])) : 0.0f;
        s[nt][e] = pr * (dp[nt][e] - Drow[r]) * p.scale;  // dS
      }
    }
    mma_p_kn<LD, BK / 16, DT>(c, acc, s, Kb, lane);  // dq += dS K (K stored [key][d] = [k][n])
  }
  c.cp_async_wait_all();
  dq_add_rows<DT>(p, acc, b, h, qi[0], t);
}

// ---- backward: dq from the stored dS (QT_CUDA_ATTN_DS, Tq == Tk) -----------------------------------------------------
// grid (ceil(Tq / 64), NH, B), after the dk/dv pass wrote p.ds. For each key tile: dq += dS K, with dS's fragments read
// by ldmatrix from its tile instead of recomputing S = Q K^T, dP = dO V^T and P: one product per tile instead of three.

template <int HSP, class Ctx>
QT_KFN void attn_dq_ds_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BQ = kAttnBQ, BK = kAttnBK, LD = HSP + 8, SL = kAttnDsLd, DT = HSP / 8;
  uint16_t* Ks = reinterpret_cast<uint16_t*>(c.smem());  // [2][BK][LD]
  uint16_t* Ss = Ks + 2 * BK * LD;                       // [2][BQ][SL]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int b = c.bz(), h = c.by(), it = c.bx(), i0 = it * BQ, kh = h / (p.NH / p.NKV);
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int64_t kstride = static_cast<int64_t>(p.NKV) * HSP;
  const uint16_t* kbase = p.k + static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * HSP;
  const uint16_t* sbase =
      p.ds + ((static_cast<int64_t>(b) * p.NH + h) * attn_ds_tiles(p.Tq) + static_cast<int64_t>(it) * (it + 1) / 2) * (BQ * BK);
  const int nk = imin(imin(i0 + BQ, p.Tq), len);  // keys the tile's last row sees (Tq == Tk)
  const int ntiles = nk > 0 ? (nk + BK - 1) / BK : 0;
  const int m0 = warp * 16;
  auto fetch = [&](int jt) {
    const int nb = jt & 1;
    tile_async<HSP, BK>(c, Ks + nb * BK * LD, kbase, kstride, jt * BK, len);
    tile_async<BK, BQ>(c, Ss + nb * BQ * SL, sbase + static_cast<int64_t>(jt) * (BQ * BK), BK, 0, BQ);
    c.cp_async_commit();
  };
  float acc[DT][4];
  zero_frags<DT>(acc);
  if (ntiles > 0) fetch(0);
  for (int jt = 0; jt < ntiles; jt++) {
    c.cp_async_wait_all();
    c.sync();  // tile jt has landed for everyone; nobody reads buffer (jt + 1) & 1 any more
    if (jt + 1 < ntiles) fetch(jt + 1);
    const uint16_t* Kb = Ks + (jt & 1) * BK * LD;
    const uint16_t* Sb = Ss + (jt & 1) * BQ * SL;
    QT_UNROLL
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t a[4];
      ldsm_a<SL>(c, a, Sb, m0, kk * 16, lane);
      QT_UNROLL
      for (int dt = 0; dt < DT; dt += 2) {
        uint32_t bb[4];
        ldsm_bt2<LD>(c, bb, Kb, kk * 16, dt * 8, lane);
        op_mma<TcOp::BF16>(c, acc[dt], a, bb);
        op_mma<TcOp::BF16>(c, acc[dt + 1], a, bb + 2);
      }
    }
  }
  c.cp_async_wait_all();
  dq_add_rows<DT>(p, acc, b, h, i0 + m0 + g, t);
}

// ---- backward: dk, dv ---------------------------------------------------------------------------------------------
// grid (ceil(Tk / 64), NKV, B), or (ceil(Tk / 64), NH, B) with dkv_split. Warp w owns keys j0 + 16w .. +15. For each
// query head of the KV group (with dkv_split: the block's one head) and each 32-query step from the first query that
// sees the block: S^T = K Q^T, dP^T = V dO^T, P^T, dS^T, dv += P^T dO, dk += dS^T Q.

template <int HSP, class Ctx>
QT_KFN void attn_dkv_tc(Ctx& c, const AttnArgs& p) {
  constexpr int BK = kAttnBK, BQ2 = kAttnBQ2, LD = HSP + 8;
  constexpr int KC = HSP / 16, NT = BQ2 / 8, DT = HSP / 8;
  uint16_t* Ks = reinterpret_cast<uint16_t*>(c.smem());  // [BK][LD]
  uint16_t* Vs = Ks + BK * LD;                           // [BK][LD]
  uint16_t* Qs = Vs + BK * LD;                           // [2][BQ2][LD]
  uint16_t* dOs = Qs + 2 * BQ2 * LD;                     // [2][BQ2][LD]
  float* lse2s = reinterpret_cast<float*>(dOs + 2 * BQ2 * LD);  // [2][BQ2]
  float* Ds = lse2s + 2 * BQ2;                                  // [2][BQ2]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int group = p.NH / p.NKV, b = c.bz(), j0 = c.bx() * BK;
  const int kh = p.dkv_split ? c.by() / group : c.by();
  const int h_begin = p.dkv_split ? c.by() : kh * group, h_end = p.dkv_split ? c.by() + 1 : (kh + 1) * group;
  const int len = p.lengths ? imin(p.lengths[b], p.Tk) : p.Tk;
  const int m0 = warp * 16;
  const int kj[2] = {j0 + m0 + g, j0 + m0 + g + 8};  // this lane's two key rows
  // where this block's gradients go: += into dk/dv, or (split) = into the per-head partials
  const int out_heads = p.dkv_split ? p.NH : p.NKV, out_h = p.dkv_split ? c.by() : kh;
  const int64_t ostride = static_cast<int64_t>(out_heads) * p.HS;
  const int64_t ooff = static_cast<int64_t>(b) * p.Tk * ostride + static_cast<int64_t>(out_h) * p.HS;
  float dk[DT][4], dv[DT][4];
  zero_frags<DT>(dk);
  zero_frags<DT>(dv);
  if (j0 < len) {  // else no query sees these keys: nothing to add (a split block still writes its zeros)
    const int64_t qstride = static_cast<int64_t>(p.NH) * HSP, kstride = static_cast<int64_t>(p.NKV) * HSP;
    const int64_t koff = static_cast<int64_t>(b) * p.Tk * kstride + static_cast<int64_t>(kh) * HSP;
    const float sl2 = p.scale * kLog2e;
    const int i_start = imax(0, j0 - (p.Tk - p.Tq)) / BQ2 * BQ2;  // the first query step that reaches key j0
    const int qsteps = (p.Tq - i_start + BQ2 - 1) / BQ2, nsteps = (h_end - h_begin) * qsteps;
    // step st: query head h_begin + st / qsteps, queries i_start + (st % qsteps) BQ2 ..; its tiles go to buffer st & 1
    auto fetch = [&](int st) {
      const int h = h_begin + st / qsteps, i0 = i_start + (st % qsteps) * BQ2, nb = st & 1;
      const int64_t qoff = static_cast<int64_t>(b) * p.Tq * qstride + static_cast<int64_t>(h) * HSP;
      tile_async<HSP, BQ2>(c, Qs + nb * BQ2 * LD, p.q + qoff, qstride, i0, p.Tq);
      tile_async<HSP, BQ2>(c, dOs + nb * BQ2 * LD, p.dout + qoff, qstride, i0, p.Tq);
      if (tid < BQ2) {
        const int i = i0 + tid;
        const int64_t at = (static_cast<int64_t>(b) * p.NH + h) * p.Tq + i;
        lse2s[nb * BQ2 + tid] = i < p.Tq ? p.lse_in[at] * kLog2e : 0.0f;
        Ds[nb * BQ2 + tid] = i < p.Tq ? p.D[at] : 0.0f;
      }
    };
    tile_async<HSP, BK>(c, Ks, p.k + koff, kstride, j0, len);
    tile_async<HSP, BK>(c, Vs, p.v + koff, kstride, j0, len);
    fetch(0);
    c.cp_async_commit();
    for (int st = 0; st < nsteps; st++) {
      c.cp_async_wait_all();
      c.sync();  // step st's tiles (and K, V) complete; step st - 1's buffers no longer read
      if (st + 1 < nsteps) {
        fetch(st + 1);
        c.cp_async_commit();
      }
      const int i0 = i_start + (st % qsteps) * BQ2, nb = st & 1;
      const uint16_t* Qb = Qs + nb * BQ2 * LD;
      const uint16_t* dOb = dOs + nb * BQ2 * LD;
      const float* lse2b = lse2s + nb * BQ2;
      const float* Db = Ds + nb * BQ2;
      float s[NT][4], dp[NT][4];
      zero_frags<NT>(s);
      zero_frags<NT>(dp);
      mma_rows_nk<LD, KC, NT>(c, s, Ks, m0, Qb, lane);    // S^T[key][query]
      mma_rows_nk<LD, KC, NT>(c, dp, Vs, m0, dOb, lane);  // dP^T[key][query]
      // every query of the step sees every key of the warp (the step's first query sees the warp's last key): no mask
      const int jw = j0 + m0 + 15;
      const bool open = i0 + BQ2 <= p.Tq && jw < len && jw <= p.Tk - p.Tq + i0;
      QT_UNROLL
      for (int nt = 0; nt < NT; nt++) {
        QT_UNROLL
        for (int e = 0; e < 4; e++) {
          const int col = nt * 8 + 2 * t + (e & 1), i = i0 + col, j = kj[e >> 1];
          const bool vis = open || (i < p.Tq && j < imin(p.Tk - p.Tq + i + 1, len));
          const float pr = vis ? exp2f(fmaf(s[nt][e], sl2, -lse2b[col])) : 0.0f;
          s[nt][e] = pr;                                   // P^T
          dp[nt][e] = pr * (dp[nt][e] - Db[col]) * p.scale;  // dS^T
        }
      }
      mma_p_kn<LD, BQ2 / 16, DT>(c, dv, s, dOb, lane);  // dv += P^T dO
      mma_p_kn<LD, BQ2 / 16, DT>(c, dk, dp, Qb, lane);  // dk += dS^T Q
      if (p.ds) {  // dS of this step's 32 queries x the block's 64 keys, as bf16 [query][key], through shared memory
        uint16_t* sds = reinterpret_cast<uint16_t*>(Ds + 2 * BQ2);  // [BQ2][kAttnDsLd]
        QT_UNROLL
        for (int nt = 0; nt < NT; nt++)
          QT_UNROLL
          for (int e = 0; e < 4; e++)
            sds[(nt * 8 + 2 * t + (e & 1)) * kAttnDsLd + m0 + g + 8 * (e >> 1)] = bf16_bits(dp[nt][e]);
        c.sync();  // the staged tile is complete (and the next step's top barrier keeps it until it is copied out)
        const int h = h_begin + st / qsteps, it = i0 / kAttnBQ, half = i0 % kAttnBQ;
        uint16_t* tile = p.ds + ((static_cast<int64_t>(b) * p.NH + h) * attn_ds_tiles(p.Tq) + static_cast<int64_t>(it) * (it + 1) / 2 +
                                 j0 / BK) * (kAttnBQ * BK);
        for (int e = tid; e < BQ2 * BK / 8; e += kAttnThreads) {  // 16-byte chunks
          const int r = e / (BK / 8), ch = e % (BK / 8);
          stg16(tile + (half + r) * BK + ch * 8, lds16(sds + r * kAttnDsLd + ch * 8));
        }
      }
    }
    c.cp_async_wait_all();
  }
  QT_UNROLL
  for (int r = 0; r < 2; r++) {
    if (kj[r] >= p.Tk) continue;
    float* krow = p.dk + ooff + static_cast<int64_t>(kj[r]) * ostride;
    float* vrow = p.dv + ooff + static_cast<int64_t>(kj[r]) * ostride;
    QT_UNROLL
    for (int dt = 0; dt < DT; dt++) {
      const int d = dt * 8 + 2 * t;
      if (d >= p.HS) continue;
      if (p.dkv_split) {
        krow[d] = dk[dt][2 * r];
        krow[d + 1] = dk[dt][2 * r + 1];
        vrow[d] = dv[dt][2 * r];
        vrow[d + 1] = dv[dt][2 * r + 1];
      } else {
        krow[d] += dk[dt][2 * r];
        krow[d + 1] += dk[dt][2 * r + 1];
        vrow[d] += dv[dt][2 * r];
        vrow[d + 1] += dv[dt][2 * r + 1];
      }
    }
  }
}

}  // namespace qt::kern
