// Fused LoRA kernels (fp32, deterministic): the dropout mask is regenerated inside the kernels that read the input,
// so the masked copy of x [N, C] is never written or read back (run 1 wrote it in forward and twice in backward),
// and the rank-R gradient of x goes through the mask straight into dinp:
//   lora_xa       u[N, R]  = dropout(x) A^T                    (forward: the A projection)
//   lora_da_part  P[s, R, C] = sum over rows n of slice s of du[n, :]^T dropout(x)[n, :]
//   lora_da_sum   dA[R, C] += sum_s P[s]                        (fixed order: deterministic)
//   lora_dx       dinp[N, C] += dropout'(du A)                  (backward: the input gradient)
// The B products (out += scale u B^T, dB += scale dout^T u, du = scale dout B) stay cuBLAS fp32 GEMMs.
// Mask (cpu/lora.cpp): element i = n * C + c is kept when rng_uniform(seed, i) >= p, then scaled by 1 / (1 - p)
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
};

QT_KFN float lora_drop(const LoraArgs& a, float v, int64_t i) {
  if (a.p <= 0.0f) return v;
  return qt::rng_uniform(a.seed, static_cast<uint64_t>(i)) >= a.p ? mul_rn(v, a.keep_scale) : 0.0f;
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
