// Fused LoRA kernels (fp32, deterministic): the dropout mask is regenerated inside the kernels that read the input,
// so the masked copy of x [N, C] is never written or read back (run 1 wrote it in forward and twice in backward),
// and the rank-R gradient of x goes through the mask straight into dinp:
//   lora_xa       u[N, R]  = dropout(x) A^T                    (forward: the A projection)
//   lora_xa_tc    the same on bf16 tensor cores with each fp32 operand split into two bf16 terms (QT_CUDA_LORA=tf32)
//   lora_da_part  P[s, R, C] = sum over rows n of slice s of du[n, :]^T dropout(x)[n, :]
//   lora_da_sum   dA[R, C] += sum_s P[s]                        (fixed order: deterministic)
//   lora_dx       dinp[N, C] += dropout'(du A)                  (backward: the input gradient)
// The B products (out += scale u B^T, dB += scale dout^T u, du = scale dout B) stay cuBLAS fp32 GEMMs.
// Mask (cpu/lora.cpp): element i = n * C + c is kept when rng_mask_uniform(seed, i) >= p, then scaled by 1 / (1 - p)
// with one rounding (as the CPU computes it). Templates over the kernel context (kernel_ctx.h): matmul_cublas.cu
// launches them, native/tests simulates them against cpu/lora.cpp.
#pragma once

#include "kernel_ctx.h"
#include "rng.h"

namespace qt::kern {

struct LoraArgs {
  const float* x = nullptr;   // [N, C] the layer input
  const float* A = nullptr;   // [R, C]
  const float* du = nullptr;  // [N, R] backward: scale * dout B
  float* u = nullptr;         // [N, R] forward output
  float* part = nullptr;      // [S, R, C] partial dA sums
  float* dA = nullptr;        // [R, C] +=
  float* dinp = nullptr;      // [N, C] +=
  float p = 0, keep_scale = 1;  // dropout probability, 1 / (1 - p)
  uint64_t seed = 0;
  int N = 0, C = 0, R = 0, S = 1;  // S slices of rows for the dA partial sums
  // lora_xa_tc: ks slices of C of kcols columns each (a multiple of kLoraTcK; lora_xa_tc_split); with ks > 1 the
  // slices' partial products go to part as [ks, N, R] and lora_xa_tc_sum adds them into u
  int ks = 1, kcols = 0;
  bool xvec = false, avec = false;  // lora_xa_tc: x (A) 16-byte aligned and C % 4 == 0: float4 loads
};

/** The arguments every LoRA kernel takes (input, A, dropout and its mask's seed, dims); the launchers and the simulator
 *  tests add the rest. */
inline LoraArgs lora_args(const float* x, const float* A, float dropout, uint64_t seed, int N, int C, int R) {
  LoraArgs a;
  a.x = x;
  a.A = A;
  a.p = dropout;
  a.keep_scale = dropout > 0.0f ? 1.0f / (1.0f - dropout) : 1.0f;
  a.seed = seed;
  a.N = N;
  a.C = C;
  a.R = R;
  return a;
}

QT_KFN float lora_drop(const LoraArgs& a, float v, int64_t i) {
  if (a.p <= 0.0f) return v;
  return qt::rng_mask_uniform(a.seed, static_cast<uint64_t>(i)) >= a.p ? mul_rn(v, a.keep_scale) : 0.0f;
}

// ---- u = dropout(x) A^T: grid (ceil(N / 64), ceil(R / 32)), 256 threads; thread (ty, tx) = (tid / 8, tid % 8) owns
// rows ty and ty + 32 and ranks 4 tx .. 4 tx + 3 of the block's 64 x 32 tile; the C loop runs in chunks of 32.
constexpr int kLoraThreads = 256;
constexpr int kLoraXaSmem = (64 * 33 + 32 * 33) * 4;

template <class Ctx>
QT_KFN void lora_xa(Ctx& c, const LoraArgs& a) {
  float* xs = reinterpret_cast<float*>(c.smem());  // [64][33]
  float* as = xs + 64 * 33;                         // [32][33]
  const int tid = c.tid(), ty = tid / 8, tx = tid % 8;
  const int n0 = c.bx() * 64, r0 = c.by() * 32;
  float acc[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  for (int c0 = 0; c0 < a.C; c0 += 32) {
    c.sync();  // the previous chunk is no longer read
    QT_UNROLL
    for (int it = 0; it < 8; it++) {
      const int e = tid + kLoraThreads * it, rr = e / 32, cc = e % 32, n = n0 + rr, col = c0 + cc;
      float v = 0.0f;
      if (n < a.N && col < a.C) {
        const int64_t i = static_cast<int64_t>(n) * a.C + col;
        v = lora_drop(a, a.x[i], i);
      }
      xs[rr * 33 + cc] = v;
    }
    QT_UNROLL
    for (int it = 0; it < 4; it++) {
      const int e = tid + kLoraThreads * it, rr = e / 32, cc = e % 32, r = r0 + rr, col = c0 + cc;
      as[rr * 33 + cc] = r < a.R && col < a.C ? a.A[static_cast<int64_t>(r) * a.C + col] : 0.0f;
    }
    c.sync();
    QT_UNROLL
    for (int k = 0; k < 32; k++) {
      const float x0 = xs[ty * 33 + k], x1 = xs[(ty + 32) * 33 + k];
      QT_UNROLL
      for (int j = 0; j < 4; j++) {
        const float w = as[(tx * 4 + j) * 33 + k];
        acc[0][j] += x0 * w;
        acc[1][j] += x1 * w;
      }
    }
  }
  QT_UNROLL
  for (int i = 0; i < 2; i++) {
    const int n = n0 + ty + 32 * i;
    if (n >= a.N) continue;
    QT_UNROLL
    for (int j = 0; j < 4; j++) {
      const int r = r0 + tx * 4 + j;
      if (r < a.R) a.u[static_cast<int64_t>(n) * a.R + r] = acc[i][j];
    }
  }
}

// ---- u = dropout(x) A^T on tensor cores (QT_CUDA_LORA=tf32, 16-bit compute; lora.cu): x is read once, the mask
// applied as it is staged, no masked copy. Precision: every fp32 operand v is split into hi = bf16(v) and
// lo = bf16(v - hi) (v - hi is exact), and a product is hi*hi + lo*hi + hi*lo on mma.sync m16n8k16 with fp32
// accumulation: only lo*lo and lo's own rounding are lost, ~2^-17 of each product, finer than TF32's 2^-11 (the
// "bf16x3" split of Henry, Tang, Heinecke 2019; Ootomo & Yokota 2022 for TF32). Compute is cheap here: the kernel is
// bound by reading x.
// Grid (ceil(N / 64), ks): block (bx, s) multiplies rows 64 bx .. 64 bx + 63 with columns [s kcols, (s + 1) kcols)
// of C, 4 warps of 16 rows each, R padded with zeros to RT (8, 16, 32 or 64: RT / 8 n-tiles of 8). The C loop runs in
// chunks of kLoraTcK = 32 columns (two k16 steps): the chunk's x [64][32] and A [RT][32] are loaded into registers
// (float4 where aligned) one chunk ahead, then masked, split and stored as bf16 hi/lo tiles in shared memory, rows
// padded by 8 elements so that the fragments' 32-bit loads (lds32, layouts in attention_tc.h) are free of bank
// conflicts. ks == 1: the block writes u; else partials into part [ks, N, R], summed by lora_xa_tc_sum in slice order.
constexpr int kLoraTcThreads = 128;
constexpr int kLoraTcRows = 64;          // rows of x per block (16 per warp)
constexpr int kLoraTcK = 32;             // columns per chunk
constexpr int kLoraTcLd = kLoraTcK + 8;  // bf16 elements per shared row
template <int RT>
constexpr int lora_xa_tc_smem() {
  return 2 * (kLoraTcRows + RT) * kLoraTcLd * 2;  // hi and lo tiles of x and A
}

/** The slices of C for N rows: enough blocks for the GPU to keep many loads of x in flight (~1024, a function of N and
 *  C only, so the summation order and the bits do not depend on the device), at most 16 slices and at least 4 chunks
 *  (128 columns) per slice; kcols is rounded to whole chunks and ks recomputed so that no slice is empty. */
QT_KFN void lora_xa_tc_split(int N, int C, int& ks, int& kcols) {
  const int blocks = (N + kLoraTcRows - 1) / kLoraTcRows, chunks = (C + kLoraTcK - 1) / kLoraTcK;
  int k = (1024 + blocks - 1) / blocks;
  k = imax(1, imin(k, imin(16, chunks / 4)));
  const int per = (chunks + k - 1) / k;  // chunks per slice
  ks = (chunks + per - 1) / per;
  kcols = per * kLoraTcK;
}

/** 4 consecutive fp32 values of a row from column col (zeros past C; row null: a padding row, all zeros). */
QT_KFN F4 lora_ld4(const float* row, int col, int C, bool vec) {
  F4 v{0.0f, 0.0f, 0.0f, 0.0f};
  if (!row) return v;
  if (vec) return col < C ? ldg4(row + col) : v;
  if (col < C) v.x = row[col];
  if (col + 1 < C) v.y = row[col + 1];
  if (col + 2 < C) v.z = row[col + 2];
  if (col + 3 < C) v.w = row[col + 3];
  return v;
}

/** Stores 4 values as bf16 hi = bf16(v) at hi[0..3] and lo = bf16(v - hi) at lo[0..3] (4-byte aligned). */
QT_KFN void lora_st_hilo(uint16_t* hi, uint16_t* lo, F4 v) {
  const float f[4] = {v.x, v.y, v.z, v.w};
  uint32_t h[4], l[4];
  QT_UNROLL
  for (int j = 0; j < 4; j++) {
    const uint16_t b = bf16_bits(f[j]);
    h[j] = b;
    l[j] = bf16_bits(f[j] - bf16_value(b));
  }
  sts32(hi, h[0] | h[1] << 16);
  sts32(hi + 2, h[2] | h[3] << 16);
  sts32(lo, l[0] | l[1] << 16);
  sts32(lo + 2, l[2] | l[3] << 16);
}

template <int RT, class Ctx>
QT_KFN void lora_xa_tc(Ctx& c, const LoraArgs& a) {
  constexpr int NT = RT / 8, LD = kLoraTcLd;
  constexpr int XIT = kLoraTcRows * kLoraTcK / 4 / kLoraTcThreads;  // float4s of x per thread and chunk (4)
  constexpr int AIT = (RT * kLoraTcK / 4 + kLoraTcThreads - 1) / kLoraTcThreads;  // of A (1 .. 4)
  uint16_t* xh = reinterpret_cast<uint16_t*>(c.smem());  // [64][LD] bf16(x)
  uint16_t* xl = xh + kLoraTcRows * LD;                  // [64][LD] bf16(x - bf16(x))
  uint16_t* ah = xl + kLoraTcRows * LD;                  // [RT][LD]
  uint16_t* al = ah + RT * LD;                           // [RT][LD]
  const int tid = c.tid(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int n0 = c.bx() * kLoraTcRows, s = c.by();
  const int cb = s * a.kcols, nch = (imin(a.C, cb + a.kcols) - cb + kLoraTcK - 1) / kLoraTcK;
  const bool drop = a.p > 0.0f;
  const uint64_t mseed = qt::mix64(a.seed);

  // this thread's float4s of a chunk: x row tid / 8 + 16 it, columns 4 (tid % 8) ..; A row e / 8 likewise
  const int q4 = 4 * (tid % 8);
  const float* xrow[XIT];
  const float* arow[AIT];
  QT_UNROLL
  for (int it = 0; it < XIT; it++) {
    const int n = n0 + tid / 8 + 16 * it;
    xrow[it] = n < a.N ? a.x + static_cast<int64_t>(n) * a.C : nullptr;
  }
  QT_UNROLL
  for (int it = 0; it < AIT; it++) {
    const int r = (tid + kLoraTcThreads * it) / 8;
    arow[it] = r < a.R ? a.A + static_cast<int64_t>(r) * a.C : nullptr;  // r < R <= RT: also inside the tile
  }
  F4 xv[XIT], av[AIT];
  auto load = [&](int c0) {
    QT_UNROLL
    for (int it = 0; it < XIT; it++) xv[it] = lora_ld4(xrow[it], c0 + q4, a.C, a.xvec);
    QT_UNROLL
    for (int it = 0; it < AIT; it++) av[it] = lora_ld4(arow[it], c0 + q4, a.C, a.avec);
  };

  float acc[NT][4];
  QT_UNROLL
  for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  load(cb);
  for (int ch = 0; ch < nch; ch++) {
    const int c0 = cb + ch * kLoraTcK;
    if (ch > 0) c.sync();  // the previous chunk's tiles are no longer read
    QT_UNROLL
    for (int it = 0; it < XIT; it++) {
      const int rr = tid / 8 + 16 * it;
      F4 v = xv[it];
      if (drop && xrow[it]) {  // the mask of lora_drop, element i = n C + col
        const uint64_t i = static_cast<uint64_t>(static_cast<int64_t>(n0 + rr) * a.C + c0 + q4);
        float u[4];
        if ((i & 3) == 0) {  // one draw for the four (always so when C % 4 == 0)
          qt::rng_mask_quad(mseed, i >> 2, u);
        } else {
          QT_UNROLL
          for (int e = 0; e < 4; e++) u[e] = qt::rng_mask_uniform_mixed(mseed, i + e);
        }
        v.x = u[0] >= a.p ? mul_rn(v.x, a.keep_scale) : 0.0f;
        v.y = u[1] >= a.p ? mul_rn(v.y, a.keep_scale) : 0.0f;
        v.z = u[2] >= a.p ? mul_rn(v.z, a.keep_scale) : 0.0f;
        v.w = u[3] >= a.p ? mul_rn(v.w, a.keep_scale) : 0.0f;
      }
      lora_st_hilo(xh + rr * LD + q4, xl + rr * LD + q4, v);
    }
    QT_UNROLL
    for (int it = 0; it < AIT; it++) {
      const int rr = (tid + kLoraTcThreads * it) / 8;
      if (rr < RT) lora_st_hilo(ah + rr * LD + q4, al + rr * LD + q4, av[it]);
    }
    c.sync();
    if (ch + 1 < nch) load(c0 + kLoraTcK);  // the next chunk's loads overlap this chunk's products

    QT_UNROLL
    for (int k0 = 0; k0 < kLoraTcK; k0 += 16) {
      const int xo = (warp * 16 + g) * LD + k0 + 2 * t;
      const uint32_t fh[4] = {lds32(xh + xo), lds32(xh + xo + 8 * LD), lds32(xh + xo + 8), lds32(xh + xo + 8 * LD + 8)};
      const uint32_t fl[4] = {lds32(xl + xo), lds32(xl + xo + 8 * LD), lds32(xl + xo + 8), lds32(xl + xo + 8 * LD + 8)};
      QT_UNROLL
      for (int j = 0; j < NT; j++) {
        const int ao = (j * 8 + g) * LD + k0 + 2 * t;
        const uint32_t bh[2] = {lds32(ah + ao), lds32(ah + ao + 8)};
        const uint32_t bl[2] = {lds32(al + ao), lds32(al + ao + 8)};
        c.mma_bf16(acc[j], fl, bh);  // the small terms first
        c.mma_bf16(acc[j], fh, bl);
        c.mma_bf16(acc[j], fh, bh);
      }
    }
  }

  float* dst = a.ks == 1 ? a.u : a.part + static_cast<int64_t>(s) * a.N * a.R;
  QT_UNROLL
  for (int h = 0; h < 2; h++) {
    const int n = n0 + warp * 16 + g + 8 * h;
    if (n >= a.N) continue;
    QT_UNROLL
    for (int j = 0; j < NT; j++) {
      const int r = j * 8 + 2 * t;
      if (r < a.R) dst[static_cast<int64_t>(n) * a.R + r] = acc[j][2 * h];
      if (r + 1 < a.R) dst[static_cast<int64_t>(n) * a.R + r + 1] = acc[j][2 * h + 1];
    }
  }
}

/** u[i] = sum over slices s of part[s][i], i < N * R, in slice order (assigns: u's old contents are never read). */
template <class Ctx>
QT_KFN void lora_xa_tc_sum(Ctx& c, const LoraArgs& a) {
  const int64_t n = static_cast<int64_t>(a.N) * a.R, stride = static_cast<int64_t>(c.nbx()) * c.nthreads();
  for (int64_t i = static_cast<int64_t>(c.bx()) * c.nthreads() + c.tid(); i < n; i += stride) {
    float s = a.part[i];
    for (int k = 1; k < a.ks; k++) s += a.part[static_cast<int64_t>(k) * n + i];
    a.u[i] = s;
  }
}

// ---- dA partial sums: grid (ceil(C / 128), S), 128 threads; thread = one column c, all RT ranks (R <= RT); block
// row-slice s covers rows [s * rows, min(N, (s + 1) * rows)), rows = ceil(N / S), walked 64 at a time with du in
// shared memory. The mask of each x element is drawn once and used for every rank.
constexpr int kLoraDaThreads = 128;
template <int RT>
constexpr int lora_da_smem() {
  return 64 * RT * 4;
}

template <int RT, class Ctx>
QT_KFN void lora_da_part(Ctx& c, const LoraArgs& a) {
  float* dus = reinterpret_cast<float*>(c.smem());  // [64][RT]
  const int col = c.bx() * kLoraDaThreads + c.tid(), s = c.by();
  const int rows = (a.N + a.S - 1) / a.S, n_begin = s * rows, n_end = imin(a.N, n_begin + rows);
  float acc[RT];
  QT_UNROLL
  for (int r = 0; r < RT; r++) acc[r] = 0.0f;
  for (int n0 = n_begin; n0 < n_end; n0 += 64) {
    c.sync();
    for (int e = c.tid(); e < 64 * RT; e += kLoraDaThreads) {
      const int nn = e / RT, r = e % RT, n = n0 + nn;
      dus[e] = n < n_end && r < a.R ? a.du[static_cast<int64_t>(n) * a.R + r] : 0.0f;
    }
    c.sync();
    if (col < a.C) {
      const int cnt = imin(64, n_end - n0);
      for (int nn = 0; nn < cnt; nn++) {
        const int64_t i = static_cast<int64_t>(n0 + nn) * a.C + col;
        const float xv = lora_drop(a, a.x[i], i);
        QT_UNROLL
        for (int r = 0; r < RT; r++) acc[r] += dus[nn * RT + r] * xv;
      }
    }
  }
  if (col < a.C) {
    QT_UNROLL
    for (int r = 0; r < RT; r++)
      if (r < a.R) a.part[(static_cast<int64_t>(s) * a.R + r) * a.C + col] = acc[r];
  }
}

/** dA[i] += sum over s of part[s][i], i < R * C: grid-stride, one thread per element, slices in order. */
template <class Ctx>
QT_KFN void lora_da_sum(Ctx& c, const LoraArgs& a) {
  const int64_t n = static_cast<int64_t>(a.R) * a.C, stride = static_cast<int64_t>(c.nbx()) * c.nthreads();
  for (int64_t i = static_cast<int64_t>(c.bx()) * c.nthreads() + c.tid(); i < n; i += stride) {
    float s = 0.0f;
    for (int k = 0; k < a.S; k++) s += a.part[static_cast<int64_t>(k) * n + i];
    a.dA[i] = add_rn(a.dA[i], s);
  }
}

// ---- dinp += dropout'(du A): grid (ceil(C / 256), ceil(N / 16)), 256 threads; thread = one column c of 16 rows,
// with A[:, c] in registers and the rows' du in shared memory.
constexpr int kLoraDxThreads = 256;
constexpr int kLoraDxRows = 16;
template <int RT>
constexpr int lora_dx_smem() {
  return kLoraDxRows * RT * 4;
}

template <int RT, class Ctx>
QT_KFN void lora_dx(Ctx& c, const LoraArgs& a) {
  float* dus = reinterpret_cast<float*>(c.smem());  // [16][RT]
  const int col = c.bx() * kLoraDxThreads + c.tid(), n0 = c.by() * kLoraDxRows;
  for (int e = c.tid(); e < kLoraDxRows * RT; e += kLoraDxThreads) {
    const int nn = e / RT, r = e % RT, n = n0 + nn;
    dus[e] = n < a.N && r < a.R ? a.du[static_cast<int64_t>(n) * a.R + r] : 0.0f;
  }
  c.sync();
  if (col >= a.C) return;  // no barrier follows
  float w[RT];
  QT_UNROLL
  for (int r = 0; r < RT; r++) w[r] = r < a.R ? a.A[static_cast<int64_t>(r) * a.C + col] : 0.0f;
  for (int nn = 0; nn < kLoraDxRows; nn++) {
    const int n = n0 + nn;
    if (n >= a.N) break;
    float s = 0.0f;
    QT_UNROLL
    for (int r = 0; r < RT; r++) s += dus[nn * RT + r] * w[r];
    const int64_t i = static_cast<int64_t>(n) * a.C + col;
    a.dinp[i] = add_rn(a.dinp[i], lora_drop(a, s, i));
  }
}

}  // namespace qt::kern
