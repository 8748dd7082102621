// LoRA backward on tensor cores (QT_CUDA_LORA=tf32 with bf16/fp16 compute, sm_80+, R <= 64; QT_CUDA_LORA_BWD=tc, the
// default): the two products on x's side of the adapter, with the dropout mask drawn where x (or the gradient) is
// touched, so the masked copy of x [N, C] is never written or read back and du A never goes through memory:
//   lora_da_tc   dA[R, C] += (dropout(x)^T du)^T    per slice of rows; with several slices the partials go to
//                                                   part [S, R, C] and lora_da_sum (lora_kernels.h) adds them in order
//   lora_dx_tc   dinp[N, C] += dropout'(du A)        the input gradient, added where it is produced
// Before (run 21): a masked copy of x written and read by a TF32 GEMM for dA, then a TF32 GEMM writing du A [N, C] and
// a masked add reading it back: six passes over an [N, C] fp32 array per module against two here (x read once; dinp
// read and written once). The B products (dB, du) stay cuBLAS TF32 GEMMs (matmul_cublas.cu).
// Precision: as lora_xa_tc, every fp32 operand is split into bf16 hi + lo and a product is lo*hi + hi*lo + hi*hi on
// mma.sync m16n8k16 (fp32 accumulation): ~2^-17 per product, finer than the TF32 GEMMs these replace.
// Deterministic: fixed tiles and summation orders, no atomics. Templates over the kernel context (kernel_ctx.h):
// lora.cu launches them, native/tests simulates them against cpu/lora.cpp.
#pragma once

#include "attention_tc.h"  // ldsm_a / ldsm_bt2: mma.sync fragments from shared-memory tiles
#include "lora_kernels.h"

namespace qt::kern {

constexpr int kLoraBwdThreads = 128;  // 4 warps

/** The rank tile for R (16, 32 or 64: whole pairs of 8-column n-tiles; R <= 64). */
QT_KFN int lora_bwd_rt(int R) { return R <= 16 ? 16 : R <= 32 ? 32 : 64; }

/** One mma step of the split products: acc[j], acc[j + 1] += A (hi/lo fragments) times the B fragments of two
 *  8-column tiles (hi/lo), the small terms first. */
template <class Ctx>
QT_KFN void lora_mma3_pair(Ctx& c, float (*acc)[4], int j, const uint32_t ah[4], const uint32_t al[4], const uint32_t bh[4],
                           const uint32_t bl[4]) {
  c.mma_bf16(acc[j], al, bh);
  c.mma_bf16(acc[j], ah, bl);
  c.mma_bf16(acc[j], ah, bh);
  c.mma_bf16(acc[j + 1], al, bh + 2);
  c.mma_bf16(acc[j + 1], ah, bl + 2);
  c.mma_bf16(acc[j + 1], ah, bh + 2);
}

/** x's 4 values at (n, col .. col + 3) masked as lora_drop does (element i = n C + col; one draw for the four when
 *  i % 4 == 0, as always when C % 4 == 0). */
QT_KFN F4 lora_drop4(const LoraArgs& a, uint64_t mseed, F4 v, int n, int col) {
  const uint64_t i = static_cast<uint64_t>(static_cast<int64_t>(n) * a.C + col);
  float u[4];
  if ((i & 3) == 0) {
    qt::rng_mask_quad(mseed, i >> 2, u);
  } else {
    QT_UNROLL
    for (int e = 0; e < 4; e++) u[e] = qt::rng_mask_uniform_mixed(mseed, i + e);
  }
  v.x = u[0] >= a.p ? mul_rn(v.x, a.keep_scale) : 0.0f;
  v.y = u[1] >= a.p ? mul_rn(v.y, a.keep_scale) : 0.0f;
  v.z = u[2] >= a.p ? mul_rn(v.z, a.keep_scale) : 0.0f;
  v.w = u[3] >= a.p ? mul_rn(v.w, a.keep_scale) : 0.0f;
  return v;
}

// ---- dA: grid (ceil(C / 64), S), 128 threads. Block (bx, s) owns columns 64 bx .. 64 bx + 63 of C and walks the rows
// of slice s (ceil(N / S) rows) in chunks of 64: the chunk's dropout(x) [64][64] and du [64][RT] are loaded into
// registers one chunk ahead, then split into bf16 hi/lo tiles in shared memory, rows padded by 8 elements. Warp w
// computes dA^T's 16 x RT block for columns 16 w .. 16 w + 15: A operand = dropout(x)^T (ldmatrix .trans of the [row][col]
// tile), B operand = du ([row][rank] = [k][n]: ldsm_bt2), K = the chunk's rows.
constexpr int kLoraDaCols = 64;
constexpr int kLoraDaK = 64;  // 32 in run 23's first version: half the bytes in flight per round trip
constexpr int kLoraDaLdx = kLoraDaCols + 8;
template <int RT>
constexpr int lora_da_tc_smem() {
  return 2 * kLoraDaK * (kLoraDaLdx + RT + 8) * 2;  // hi and lo tiles of x and du
}

/** Row slices of dA's partial sums for N rows and rank R: 128+ rows per slice, at most 16, and S R <= N so that the
 *  partials [S, R, C] fit in the op's [N, C] scratch (S == 1: the block adds into dA itself). A function of N and R
 *  only, so the bits do not depend on the device. */
QT_KFN int lora_da_tc_slices(int N, int R) {
  int s = imax(1, imin(16, N / 128));
  while (s > 1 && s * R > N) s--;
  return s;
}

/** The A fragment (16 x 16, rows m0.., k0..) of an operand stored [k][m] (a row-major tile read transposed). */
template <int LD, class Ctx>
QT_KFN void ldsm_at(Ctx& c, uint32_t a[4], const uint16_t* s, int k0, int m0, int lane) {
  const int i = lane >> 3, r = lane & 7;
  c.ldsm_x4_t(a, s + (k0 + (i >> 1) * 8 + r) * LD + m0 + (i & 1) * 8);
}

template <int RT, class Ctx>
QT_KFN void lora_da_tc(Ctx& c, const LoraArgs& a) {
  constexpr int NT = RT / 8, LDX = kLoraDaLdx, LDU = RT + 8, K = kLoraDaK;
  constexpr int XQ = kLoraDaCols / 4;                 // float4s per x row (16)
  constexpr int XIT = K * XQ / kLoraBwdThreads;       // x float4s per thread and chunk (8)
  constexpr int UQ = RT / 4;                          // float4s per du row
  constexpr int UIT = (K * UQ + kLoraBwdThreads - 1) / kLoraBwdThreads;  // 2, 4 or 8
  uint16_t* xh = reinterpret_cast<uint16_t*>(c.smem());  // [K][LDX]
  uint16_t* xl = xh + K * LDX;
  uint16_t* uh = xl + K * LDX;  // [K][LDU]
  uint16_t* ul = uh + K * LDU;
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int c0 = c.bx() * kLoraDaCols, s = c.by();
  const int rows = (a.N + a.S - 1) / a.S, nb = s * rows, ne = imin(a.N, nb + rows);
  const int nch = ne > nb ? (ne - nb + K - 1) / K : 0;
  const bool drop = a.p > 0.0f;
  const uint64_t mseed = qt::mix64(a.seed);
  const bool uvec = a.R % 4 == 0 && (reinterpret_cast<uintptr_t>(a.du) & 15) == 0;

  F4 xv[XIT], uv[UIT];
  auto load = [&](int n0) {
    QT_UNROLL
    for (int it = 0; it < XIT; it++) {
      const int e = tid + kLoraBwdThreads * it, n = n0 + e / XQ;
      xv[it] = lora_ld4(n < ne ? a.x + static_cast<int64_t>(n) * a.C : nullptr, c0 + 4 * (e % XQ), a.C, a.xvec);
    }
    QT_UNROLL
    for (int it = 0; it < UIT; it++) {
      const int e = tid + kLoraBwdThreads * it, n = n0 + e / UQ;
      uv[it] = lora_ld4(e < K * UQ && n < ne ? a.du + static_cast<int64_t>(n) * a.R : nullptr, 4 * (e % UQ), a.R, uvec);
    }
  };

  float acc[NT][4];
  QT_UNROLL
  for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  if (nch > 0) load(nb);
  for (int ch = 0; ch < nch; ch++) {
    const int n0 = nb + ch * K;
    if (ch > 0) c.sync();  // the previous chunk's tiles are no longer read
    QT_UNROLL
    for (int it = 0; it < XIT; it++) {
      const int e = tid + kLoraBwdThreads * it, rr = e / XQ, q = 4 * (e % XQ);
      F4 v = xv[it];
      if (drop && n0 + rr < ne) v = lora_drop4(a, mseed, v, n0 + rr, c0 + q);
      lora_st_hilo(xh + rr * LDX + q, xl + rr * LDX + q, v);
    }
    QT_UNROLL
    for (int it = 0; it < UIT; it++) {
      const int e = tid + kLoraBwdThreads * it, rr = e / UQ, q = 4 * (e % UQ);
      if (e < K * UQ) lora_st_hilo(uh + rr * LDU + q, ul + rr * LDU + q, uv[it]);
    }
    c.sync();
    if (ch + 1 < nch) load(n0 + K);  // the next chunk's loads overlap this chunk's products

    QT_UNROLL
    for (int k0 = 0; k0 < K; k0 += 16) {
      uint32_t fh[4], fl[4];
      ldsm_at<LDX>(c, fh, xh, k0, 16 * warp, lane);
      ldsm_at<LDX>(c, fl, xl, k0, 16 * warp, lane);
      QT_UNROLL
      for (int j = 0; j < NT; j += 2) {
        uint32_t bh[4], bl[4];
        ldsm_bt2<LDU>(c, bh, uh, k0, j * 8, lane);
        ldsm_bt2<LDU>(c, bl, ul, k0, j * 8, lane);
        lora_mma3_pair(c, acc, j, fh, fl, bh, bl);
      }
    }
  }

  // acc[j][e]: column c0 + 16 warp + g (+ 8 for e >= 2), rank 8 j + 2 t (+ 1 for odd e)
  QT_UNROLL
  for (int j = 0; j < NT; j++) {
    QT_UNROLL
    for (int e = 0; e < 4; e++) {
      const int col = c0 + 16 * warp + g + 8 * (e >> 1), r = 8 * j + 2 * t + (e & 1);
      if (col >= a.C || r >= a.R) continue;
      const int64_t at = static_cast<int64_t>(r) * a.C + col;
      if (a.S == 1) a.dA[at] = add_rn(a.dA[at], acc[j][e]);
      else a.part[static_cast<int64_t>(s) * a.R * a.C + at] = acc[j][e];
    }
  }
}

/** Two floats at p (8-byte aligned) as one load or store. */
QT_KFN void lora_ld2(const float* p, float& v0, float& v1) {
#if defined(__CUDA_ARCH__)
  const float2 d = *reinterpret_cast<const float2*>(p);
  v0 = d.x;
  v1 = d.y;
#else
  v0 = p[0];
  v1 = p[1];
#endif
}
QT_KFN void lora_st2(float* p, float v0, float v1) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
#else
  p[0] = v0;
  p[1] = v1;
#endif
}

// ---- dinp: grid (ceil(C / 128), ceil(N / (64 T))), 128 threads, T = lora_dx_tc_tiles(N). Block (bx, by) stages
// A[:, 128 bx ..] (hi/lo, [RT][136]) once, then for each of its T tiles of 64 rows stages du [64][RT] (hi/lo) and warp w
// multiplies its 16 rows by the 128 columns (16 n-tiles; A operand du [row][rank]: ldsm_a, B operand A [rank][col] =
// [k][n]: ldsm_bt2). Lane (g, t) holds columns 2t, 2t + 1 of each 8-column tile of rows g and g + 8: it loads those
// dinp values before the products (all 64 in flight at once: one memory round trip per tile, run 23's first version
// waited for each pair in turn and was slower than the GEMMs it replaced), then adds the products through the mask (a
// pair shares one half-draw, rng_mask_pair, when its element index is even) and stores them.
constexpr int kLoraDxCols = 128;
constexpr int kLoraDxTileRows = 64;
constexpr int kLoraDxLda = kLoraDxCols + 8;
template <int RT>
constexpr int lora_dx_tc_smem() {
  return 2 * (RT * kLoraDxLda + kLoraDxTileRows * (RT + 8)) * 2;
}
/** Row tiles per dinp block: A staged once for up to 4 tiles when N is large, one tile per block when few blocks would
 *  leave SMs idle. */
QT_KFN int lora_dx_tc_tiles(int N) { return N >= 8192 ? 4 : N >= 2048 ? 2 : 1; }

template <int RT, class Ctx>
QT_KFN void lora_dx_tc(Ctx& c, const LoraArgs& a) {
  constexpr int NT = kLoraDxCols / 8, LDA = kLoraDxLda, LDU = RT + 8;
  constexpr int AQ = kLoraDxCols / 4, UQ = RT / 4;
  uint16_t* Ah = reinterpret_cast<uint16_t*>(c.smem());  // [RT][LDA]
  uint16_t* Al = Ah + RT * LDA;
  uint16_t* uh = Al + RT * LDA;  // [64][LDU]
  uint16_t* ul = uh + kLoraDxTileRows * LDU;
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int tiles = lora_dx_tc_tiles(a.N);
  const int c0 = c.bx() * kLoraDxCols, nblock = c.by() * kLoraDxTileRows * tiles;
  const bool drop = a.p > 0.0f;
  const uint64_t mseed = qt::mix64(a.seed);
  const bool uvec = a.R % 4 == 0 && (reinterpret_cast<uintptr_t>(a.du) & 15) == 0;
  const bool pairs = a.C % 2 == 0 && (reinterpret_cast<uintptr_t>(a.dinp) & 7) == 0;  // 8-byte pairs at even elements

  // staging loops of fixed counts, unrolled: every load of a tile is in flight at once (run 23's first version waited
  // for each in turn)
  constexpr int AIT = RT * AQ / kLoraBwdThreads, UIT = kLoraDxTileRows * UQ / kLoraBwdThreads;
  {
    F4 av[AIT];
    QT_UNROLL
    for (int it = 0; it < AIT; it++) {
      const int e = tid + kLoraBwdThreads * it, r = e / AQ;
      av[it] = lora_ld4(r < a.R ? a.A + static_cast<int64_t>(r) * a.C : nullptr, c0 + 4 * (e % AQ), a.C, a.avec);
    }
    QT_UNROLL
    for (int it = 0; it < AIT; it++) {
      const int e = tid + kLoraBwdThreads * it, r = e / AQ, q = 4 * (e % AQ);
      lora_st_hilo(Ah + r * LDA + q, Al + r * LDA + q, av[it]);
    }
  }

  for (int tile = 0; tile < tiles; tile++) {
    const int n0 = nblock + tile * kLoraDxTileRows;
    if (n0 >= a.N) break;  // uniform over the block
    if (tile > 0) c.sync();  // the previous tile's du is no longer read
    F4 uv[UIT];
    QT_UNROLL
    for (int it = 0; it < UIT; it++) {
      const int e = tid + kLoraBwdThreads * it, n = n0 + e / UQ;
      uv[it] = lora_ld4(n < a.N ? a.du + static_cast<int64_t>(n) * a.R : nullptr, 4 * (e % UQ), a.R, uvec);
    }
    // this lane's dinp values of the tile: row n0 + 16 warp + g + 8 h, columns c0 + 8 j + 2 t (+ 1)
    float d[2][NT][2];
    QT_UNROLL
    for (int h = 0; h < 2; h++) {
      const int n = n0 + 16 * warp + g + 8 * h;
      const float* drow = a.dinp + static_cast<int64_t>(n) * a.C;
      QT_UNROLL
      for (int j = 0; j < NT; j++) {
        const int col = c0 + 8 * j + 2 * t;
        d[h][j][0] = d[h][j][1] = 0.0f;
        if (n >= a.N || col >= a.C) continue;
        if (pairs) {
          lora_ld2(drow + col, d[h][j][0], d[h][j][1]);
        } else {
          d[h][j][0] = drow[col];
          if (col + 1 < a.C) d[h][j][1] = drow[col + 1];
        }
      }
    }
    QT_UNROLL
    for (int it = 0; it < UIT; it++) {
      const int e = tid + kLoraBwdThreads * it, rr = e / UQ, q = 4 * (e % UQ);
      lora_st_hilo(uh + rr * LDU + q, ul + rr * LDU + q, uv[it]);
    }
    c.sync();

    float acc[NT][4];
    QT_UNROLL
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    QT_UNROLL
    for (int k0 = 0; k0 < RT; k0 += 16) {
      uint32_t fh[4], fl[4];
      ldsm_a<LDU>(c, fh, uh, 16 * warp, k0, lane);
      ldsm_a<LDU>(c, fl, ul, 16 * warp, k0, lane);
      QT_UNROLL
      for (int j = 0; j < NT; j += 2) {
        uint32_t bh[4], bl[4];
        ldsm_bt2<LDA>(c, bh, Ah, k0, j * 8, lane);
        ldsm_bt2<LDA>(c, bl, Al, k0, j * 8, lane);
        lora_mma3_pair(c, acc, j, fh, fl, bh, bl);
      }
    }

    // acc[j][2 h + e]: row n0 + 16 warp + g + 8 h, column c0 + 8 j + 2 t + e
    QT_UNROLL
    for (int h = 0; h < 2; h++) {
      const int n = n0 + 16 * warp + g + 8 * h;
      if (n >= a.N) continue;
      float* drow = a.dinp + static_cast<int64_t>(n) * a.C;
      QT_UNROLL
      for (int j = 0; j < NT; j++) {
        const int col = c0 + 8 * j + 2 * t;
        if (col >= a.C) continue;
        float v0 = acc[j][2 * h], v1 = acc[j][2 * h + 1];
        const uint64_t i = static_cast<uint64_t>(static_cast<int64_t>(n) * a.C + col);
        if (drop) {
          float u0, u1;
          if ((i & 1) == 0) {
            qt::rng_mask_pair(mseed, i >> 1, u0, u1);
          } else {
            u0 = qt::rng_mask_uniform_mixed(mseed, i);
            u1 = qt::rng_mask_uniform_mixed(mseed, i + 1);
          }
          v0 = u0 >= a.p ? mul_rn(v0, a.keep_scale) : 0.0f;
          v1 = u1 >= a.p ? mul_rn(v1, a.keep_scale) : 0.0f;
        }
        v0 = add_rn(d[h][j][0], v0);
        v1 = add_rn(d[h][j][1], v1);
        if (pairs) {  // col even, col + 1 < C
          lora_st2(drow + col, v0, v1);
        } else {
          drow[col] = v0;
          if (col + 1 < a.C) drow[col + 1] = v1;
        }
      }
    }
  }
}

}  // namespace qt::kern
