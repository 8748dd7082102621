// Elementwise ops and reductions on the GPU: embedding lookup/scatter, NEFTune noise, SwiGLU, add/scale,
// the gradient-norm reduction, AdamW, the LoRA dropout mask, bias add/sum. Each mirrors its engine/cpu op.
// Where the CPU result must be reproduced bit for bit (NEFTune noise, dropout masks, AdamW), every float
// operation is an explicitly rounded intrinsic in the CPU's order, so no FMA contraction can change it; the
// random numbers are rng.h's, compiled for the device. Reductions use a fixed tree order (no atomics):
// the same inputs give the same bits on every run (resume == not stopping).
#include <cmath>

#include "ops.cuh"
#include "rng.h"

namespace qt::cuda {

namespace {

constexpr int kThreads = 256;

#define QT_GRID_STRIDE(i, n) \
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<size_t>(gridDim.x) * blockDim.x)

// ---- embedding ----

__global__ void embedding_forward_kernel(float* out, const int32_t* ids, const void* wte, DType t, int N, int C) {
  const size_t total = static_cast<size_t>(N) * C;
  QT_GRID_STRIDE(i, total) {
    const size_t n = i / C, c = i % C;
    out[i] = load_dense(wte, t, static_cast<int64_t>(ids[n]) * C + static_cast<int64_t>(c));
  }
}

__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* ids, int N, int C) {
  // one thread per column, rows in order: repeated ids add in the CPU's order
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int n = 0; n < N; n++) {
    float* d = dwte + static_cast<size_t>(ids[n]) * C + c;
    *d = __fadd_rn(*d, dout[static_cast<size_t>(n) * C + c]);
  }
}

// ---- NEFTune ----

__global__ void neftune_kernel(float* x, const int32_t* lengths, float alpha, uint64_t seed, int B, int T, int C) {
  const size_t total = static_cast<size_t>(B) * T * C;
  QT_GRID_STRIDE(i, total) {
    const int b = static_cast<int>(i / (static_cast<size_t>(T) * C));
    const int t = static_cast<int>((i / C) % T);
    const int L = lengths[b];
    if (L <= 0 || t >= L) continue;
    // mag = alpha / sqrt(L * C); x += (2u - 1) * mag   (cpu/neftune.cpp, same rounding)
    const float mag = __fdiv_rn(alpha, __fsqrt_rn(__fmul_rn(static_cast<float>(L), static_cast<float>(C))));
    const float u = rng_uniform(seed, i);
    x[i] = __fadd_rn(x[i], __fmul_rn(__fsub_rn(__fmul_rn(2.0f, u), 1.0f), mag));
  }
}

// ---- SwiGLU ----

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

__device__ __forceinline__ float swiglu(float g, float u) { return g * sigmoid(g) * u; }

// Launched with PDL (launch_pdl; a decode step's SwiGLU): waits for the previous kernel first. vec4: the arrays are
// 16-byte aligned and the first n / 4 * 4 elements go as float4s (run 11: scalar accesses reached 2.4 TB/s on an H200),
// the rest one by one.
__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, size_t n, bool vec4) {
  kern::grid_dep_begin();
  const size_t n4 = vec4 ? n / 4 : 0;
  QT_GRID_STRIDE(i, n4) {
    const float4 g = reinterpret_cast<const float4*>(gate)[i], u = reinterpret_cast<const float4*>(up)[i];
    reinterpret_cast<float4*>(out)[i] = make_float4(swiglu(g.x, u.x), swiglu(g.y, u.y), swiglu(g.z, u.z), swiglu(g.w, u.w));
  }
  QT_GRID_STRIDE(j, n - 4 * n4) {
    const size_t i = 4 * n4 + j;
    out[i] = swiglu(gate[i], up[i]);
  }
}

__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n) {
  QT_GRID_STRIDE(i, n) {
    const float g = gate[i], s = sigmoid(g);
    dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] += dout[i] * g * s;
  }
}

// ---- SwiGLU on bf16 arrays (the bf16 MLP path, backend.h): 8 values per 16-byte access where all arrays allow it ----

__device__ __forceinline__ float bf_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
using kern::bf16_bits;

// d silu(g) u / dg and / du for the backward, given dout d
__device__ __forceinline__ void swiglu_grads(float g, float u, float d, float& dg, float& du) {
  const float s = sigmoid(g);
  dg = d * u * s * (1.0f + g * (1.0f - s));
  du = d * g * s;
}

__global__ void swiglu_forward_bf16_kernel(uint16_t* out, const uint16_t* gate, const uint16_t* up, size_t n, bool vec8) {
  const size_t n8 = vec8 ? n / 8 : 0;
  QT_GRID_STRIDE(i, n8) {
    const uint4 g = reinterpret_cast<const uint4*>(gate)[i], u = reinterpret_cast<const uint4*>(up)[i];
    const uint32_t gw[4] = {g.x, g.y, g.z, g.w}, uw[4] = {u.x, u.y, u.z, u.w};
    uint32_t o[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
      o[k] = kern::pack_bf16(swiglu(bf_lo(gw[k]), bf_lo(uw[k])), swiglu(bf_hi(gw[k]), bf_hi(uw[k])));
    reinterpret_cast<uint4*>(out)[i] = make_uint4(o[0], o[1], o[2], o[3]);
  }
  QT_GRID_STRIDE(j, n - 8 * n8) {
    const size_t i = 8 * n8 + j;
    out[i] = bf16_bits(swiglu(__uint_as_float(static_cast<uint32_t>(gate[i]) << 16), __uint_as_float(static_cast<uint32_t>(up[i]) << 16)));
  }
}

__global__ void swiglu_backward_bf16_kernel(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate,
                                            const uint16_t* up, size_t n, bool vec8) {
  const size_t n8 = vec8 ? n / 8 : 0;
  QT_GRID_STRIDE(i, n8) {
    const uint4 g = reinterpret_cast<const uint4*>(gate)[i], u = reinterpret_cast<const uint4*>(up)[i];
    const uint4 d = reinterpret_cast<const uint4*>(dout)[i];
    const uint32_t gw[4] = {g.x, g.y, g.z, g.w}, uw[4] = {u.x, u.y, u.z, u.w}, dw[4] = {d.x, d.y, d.z, d.w};
    uint32_t og[4], ou[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float g0, u0, g1, u1;
      swiglu_grads(bf_lo(gw[k]), bf_lo(uw[k]), bf_lo(dw[k]), g0, u0);
      swiglu_grads(bf_hi(gw[k]), bf_hi(uw[k]), bf_hi(dw[k]), g1, u1);
      og[k] = kern::pack_bf16(g0, g1);
      ou[k] = kern::pack_bf16(u0, u1);
    }
    reinterpret_cast<uint4*>(dgate)[i] = make_uint4(og[0], og[1], og[2], og[3]);
    reinterpret_cast<uint4*>(dup)[i] = make_uint4(ou[0], ou[1], ou[2], ou[3]);
  }
  QT_GRID_STRIDE(j, n - 8 * n8) {
    const size_t i = 8 * n8 + j;
    float dg, du;
    swiglu_grads(__uint_as_float(static_cast<uint32_t>(gate[i]) << 16), __uint_as_float(static_cast<uint32_t>(up[i]) << 16),
                 __uint_as_float(static_cast<uint32_t>(dout[i]) << 16), dg, du);
    dgate[i] = bf16_bits(dg);
    dup[i] = bf16_bits(du);
  }
}

// ---- add / scale ----

__global__ void add_kernel(float* out, const float* a, const float* b, size_t n) {
  QT_GRID_STRIDE(i, n) out[i] = __fadd_rn(a[i], b[i]);
}

__global__ void from_bf16_kernel(float* out, const uint16_t* in, size_t n) {
  QT_GRID_STRIDE(i, n) out[i] = __uint_as_float(static_cast<uint32_t>(in[i]) << 16);
}

__global__ void scale_kernel(float* x, float s, size_t n) {
  QT_GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], s);
}

// ---- sum of squares: fixed grid, per-thread double sums, block tree, then one block over the partials ----

constexpr int kSumBlocks = 1024;

__global__ void sum_squares_partial(double* partial, const float* x, size_t n) {
  __shared__ double scratch[32];
  double s = 0;
  QT_GRID_STRIDE(i, n) s += static_cast<double>(x[i]) * x[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_partials(double* out, const double* partial, int count) {
  __shared__ double scratch[32];
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

// ---- AdamW (cpu/adamw.cpp, same operations in the same order) ----

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float one_minus_b1,
                             float beta2, float one_minus_b2, float eps, float decay, float step_size, float bc2_sqrt) {
  QT_GRID_STRIDE(i, n) {
    const float g = grads[i];
    float p = __fmul_rn(params[i], decay);
    const float mi = __fadd_rn(m[i], __fmul_rn(__fsub_rn(g, m[i]), one_minus_b1));
    const float vi = __fadd_rn(__fmul_rn(v[i], beta2), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
    params[i] = p;
  }
}

// ---- LoRA dropout ----

// A thread per quad of elements 4k .. 4k + 3: one mask draw for the four (rng_mask_quad); float4 accesses when the
// arrays are 16-byte aligned, else one by one (the same bits).
__global__ void dropout_kernel(float* out, const float* in, float p, float keep_scale, uint64_t seed, size_t n, bool vec4) {
  const uint64_t ms = mix64(seed);
  QT_GRID_STRIDE(k, (n + 3) / 4) {
    float u[4];
    rng_mask_quad(ms, k, u);
    const size_t i = 4 * k;
    if (vec4 && i + 4 <= n) {
      const float4 v = reinterpret_cast<const float4*>(in)[k];
      reinterpret_cast<float4*>(out)[k] = make_float4(u[0] >= p ? __fmul_rn(v.x, keep_scale) : 0.0f, u[1] >= p ? __fmul_rn(v.y, keep_scale) : 0.0f,
                                                      u[2] >= p ? __fmul_rn(v.z, keep_scale) : 0.0f, u[3] >= p ? __fmul_rn(v.w, keep_scale) : 0.0f);
      continue;
    }
    for (size_t e = 0; e < 4 && i + e < n; e++) out[i + e] = u[e] >= p ? __fmul_rn(in[i + e], keep_scale) : 0.0f;
  }
}

__global__ void dropout_backward_kernel(float* dinp, const float* g, float p, float keep_scale, uint64_t seed, size_t n, bool vec4) {
  const uint64_t ms = mix64(seed);
  QT_GRID_STRIDE(k, (n + 3) / 4) {
    float u[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    if (p > 0.0f) rng_mask_quad(ms, k, u);
    auto d = [&](float v, int e) { return p > 0.0f ? (u[e] >= p ? __fmul_rn(v, keep_scale) : 0.0f) : v; };
    const size_t i = 4 * k;
    if (vec4 && i + 4 <= n) {
      const float4 v = reinterpret_cast<const float4*>(g)[k];
      float4 o = reinterpret_cast<const float4*>(dinp)[k];
      o.x = __fadd_rn(o.x, d(v.x, 0));
      o.y = __fadd_rn(o.y, d(v.y, 1));
      o.z = __fadd_rn(o.z, d(v.z, 2));
      o.w = __fadd_rn(o.w, d(v.w, 3));
      reinterpret_cast<float4*>(dinp)[k] = o;
      continue;
    }
    for (size_t e = 0; e < 4 && i + e < n; e++) dinp[i + e] = __fadd_rn(dinp[i + e], d(g[i + e], static_cast<int>(e)));
  }
}

// ---- bias ----

__global__ void bias_add_kernel(float* out, const float* bias, int N, int OC) {
  const size_t total = static_cast<size_t>(N) * OC;
  QT_GRID_STRIDE(i, total) out[i] = __fadd_rn(out[i], bias[i % OC]);
}

__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int OC) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float s = 0;
  for (int n = 0; n < N; n++) s = __fadd_rn(s, dout[static_cast<size_t>(n) * OC + o]);
  dbias[o] = __fadd_rn(dbias[o], s);
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const Weight& wte, int N, int C) {
  Op op("embedding_forward");
  if (wte.dtype == DType::NF4) QT_FAIL(ErrorCode::Unsupported, "an NF4 embedding table is not supported");
  embedding_forward_kernel<<<grid_for(static_cast<size_t>(N) * C, kThreads), kThreads, 0, op.s>>>(out, ids, wte.data, wte.dtype, N, C);
  QT_LAUNCH_CHECK();
}

void embedding_backward(float* dwte, const float* dout, const int32_t* ids, int N, int C) {
  Op op("embedding_backward");
  embedding_backward_kernel<<<grid_for(static_cast<size_t>(C), kThreads), kThreads, 0, op.s>>>(dwte, dout, ids, N, C);
  QT_LAUNCH_CHECK();
}

void neftune_forward(float* x, const int32_t* lengths, float alpha, uint64_t seed, int B, int T, int C) {
  if (alpha == 0.0f) return;
  Op op("neftune_forward");
  neftune_kernel<<<grid_for(static_cast<size_t>(B) * T * C, kThreads), kThreads, 0, op.s>>>(x, lengths, alpha, seed, B, T, C);
  QT_LAUNCH_CHECK();
}

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
  Op op("swiglu_forward");
  const bool vec4 = aligned16(out) && aligned16(gate) && aligned16(up);
  launch_pdl(swiglu_forward_kernel, dim3(grid_for(vec4 ? (n + 3) / 4 : n, kThreads)), dim3(kThreads), 0, op.s, out, gate, up, n, vec4);
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n) {
  Op op("swiglu_backward");
  swiglu_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, op.s>>>(dgate, dup, dout, gate, up, n);
  QT_LAUNCH_CHECK();
}

void swiglu_forward_bf16(uint16_t* out, const uint16_t* gate, const uint16_t* up, size_t n) {
  if (!n) return;
  Op op("swiglu_forward");
  const bool vec8 = aligned16(out) && aligned16(gate) && aligned16(up);
  swiglu_forward_bf16_kernel<<<grid_for(vec8 ? (n + 7) / 8 : n, kThreads), kThreads, 0, op.s>>>(out, gate, up, n, vec8);
  QT_LAUNCH_CHECK();
}

void swiglu_backward_bf16(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate, const uint16_t* up,
                          size_t n) {
  if (!n) return;
  Op op("swiglu_backward");
  const bool vec8 = aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up);
  swiglu_backward_bf16_kernel<<<grid_for(vec8 ? (n + 7) / 8 : n, kThreads), kThreads, 0, op.s>>>(dgate, dup, dout, gate, up, n,
                                                                                                 vec8);
  QT_LAUNCH_CHECK();
}

void add(float* out, const float* a, const float* b, size_t n) {
  Op op("add");
  add_launch(out, a, b, n, op.s);
}

void add_launch(float* out, const float* a, const float* b, size_t n, cudaStream_t s) {
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(out, a, b, n);
  QT_LAUNCH_CHECK();
}

void to_bf16(uint16_t* out, const float* in, size_t n) {
  if (!n) return;
  Op op("to_bf16");
  convert_from_f32(out, DType::BF16, in, n, op.s);
}

void from_bf16(float* out, const uint16_t* in, size_t n) {
  if (!n) return;
  Op op("from_bf16");
  from_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, op.s>>>(out, in, n);
  QT_LAUNCH_CHECK();
}

void scale(float* x, float s, size_t n) {
  Op op("scale");
  scale_kernel<<<grid_for(n, kThreads), kThreads, 0, op.s>>>(x, s, n);
  QT_LAUNCH_CHECK();
}

double sum_squares(const float* x, size_t n) {
  Op op("sum_squares");
  Carve k(op.c);
  const size_t o_part = k.add(kSumBlocks * sizeof(double)), o_out = k.add(sizeof(double));
  char* base = k.commit();
  double* partial = reinterpret_cast<double*>(base + o_part);
  double* result = reinterpret_cast<double*>(base + o_out);
  sum_squares_partial<<<kSumBlocks, kThreads, 0, op.s>>>(partial, x, n);
  QT_LAUNCH_CHECK();
  sum_partials<<<1, kThreads, 0, op.s>>>(result, partial, kSumBlocks);
  QT_LAUNCH_CHECK();
  double host = 0;
  QT_CUDA_CHECK(cudaMemcpyAsync(&host, result, sizeof(double), cudaMemcpyDeviceToHost, op.s));
  QT_CUDA_CHECK(cudaStreamSynchronize(op.s));
  return host;
}

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int64_t t) {
  Op op("adamw_update");
  // host-side constants exactly as cpu/adamw.cpp computes them
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - lr * weight_decay;
  adamw_kernel<<<grid_for(n, kThreads), kThreads, 0, op.s>>>(params, grads, m, v, n, 1.0f - beta1, beta2, 1.0f - beta2, eps,
                                                              decay, step_size, bc2_sqrt);
  QT_LAUNCH_CHECK();
}

void dropout_apply(float* out, const float* in, float p, uint64_t seed, size_t n, cudaStream_t s) {
  if (p <= 0.0f) {
    QT_CUDA_CHECK(cudaMemcpyAsync(out, in, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
    return;
  }
  const float keep_scale = 1.0f / (1.0f - p);
  dropout_kernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(out, in, p, keep_scale, seed, n, aligned16(out) && aligned16(in));
  QT_LAUNCH_CHECK();
}

void dropout_backward_add(float* dinp, const float* g, float p, uint64_t seed, size_t n, cudaStream_t s) {
  const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
  dropout_backward_kernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(dinp, g, p, keep_scale, seed, n,
                                                                              aligned16(dinp) && aligned16(g));
  QT_LAUNCH_CHECK();
}

void bias_add(float* out, const float* bias, int N, int OC, cudaStream_t s) {
  bias_add_kernel<<<grid_for(static_cast<size_t>(N) * OC, kThreads), kThreads, 0, s>>>(out, bias, N, OC);
  QT_LAUNCH_CHECK();
}

void bias_backward(float* dbias, const float* dout, int N, int OC, cudaStream_t s) {
  bias_backward_kernel<<<grid_for(static_cast<size_t>(OC), kThreads), kThreads, 0, s>>>(dbias, dout, N, OC);
  QT_LAUNCH_CHECK();
}

}  // namespace qt::cuda
