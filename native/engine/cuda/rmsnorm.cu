// RMSNorm on the GPU (cpu/rmsnorm.cpp): one block per row; the sum of squares and the backward dot product
// are accumulated in double, as on the CPU, with a fixed tree order (deterministic). dweight, when asked,
// sums rows serially per column (the CPU's order). The forward runs decode_kernels.h's rmsnorm_rows (QT_CUDA_DECODE=1;
// written for decode steps, since run 17 for any number of rows: training's norms went from 167 to ~125 us per
// 8192 x 4096 call): a block as wide as the row, which it reads once.
// add_rmsnorm_forward (a residual add and the norm after it) is one launch of either kernel with the add fused in,
// taking the kernel rmsnorm_forward would take, with the same per-element operations: the same bits as add + norm.
#include "decode_kernels.h"
#include "ops.cuh"

namespace qt::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, int C, float eps) {
  __shared__ double scratch[32];
  const size_t row = blockIdx.x;
  const float* x = inp + row * C;
  double ss = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) ss += static_cast<double>(x[c]) * x[c];
  ss = block_sum(ss, scratch);
  const float r = 1.0f / sqrtf(static_cast<float>(ss / C) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  float* y = out + row * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) y[c] = __fmul_rn(__fmul_rn(x[c], r), weight[c]);
}

// add_rmsnorm_forward off the rows path: rmsnorm_forward_kernel on x_out = a + b, the add fused into its first loop
// (each thread adds, stores and squares the elements it later normalises; __fadd_rn as the add op's kernel), so the
// same bits as the add kernel followed by rmsnorm_forward_kernel. x_out may alias a or b.
__global__ void add_rmsnorm_forward_kernel(float* x_out, float* out, float* rstd, const float* a, const float* b,
                                           const float* weight, int C, float eps) {
  __shared__ double scratch[32];
  const size_t row = blockIdx.x;
  const float* xa = a + row * C;
  const float* xb = b + row * C;
  float* x = x_out + row * C;
  double ss = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = __fadd_rn(xa[c], xb[c]);
    x[c] = v;
    ss += static_cast<double>(v) * v;
  }
  ss = block_sum(ss, scratch);
  const float r = 1.0f / sqrtf(static_cast<float>(ss / C) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  float* y = out + row * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) y[c] = __fmul_rn(__fmul_rn(x[c], r), weight[c]);
}

// The rows kernels serve decode steps: launched with PDL (launch_pdl), they wait for the previous kernel first.
__global__ void __launch_bounds__(1024) rmsnorm_rows_kernel(kern::RmsArgs a) {
  kern::DevCtx c;
  kern::grid_dep_begin();
  kern::rmsnorm_rows(c, a);
}

__global__ void __launch_bounds__(1024) add_rmsnorm_rows_kernel(kern::RmsArgs a, float* x_out, const float* xa, const float* xb) {
  kern::DevCtx c;
  kern::grid_dep_begin();
  kern::add_rmsnorm_rows(c, a, x_out, xa, xb);
}

// Whether rmsnorm_forward takes the rows kernel for these rows (add_rmsnorm_forward follows the same choice).
bool rows_path(int N, int C, const float* out, const float* inp, const float* weight) {
  return paths().decode && N > 0 && kern::rms_rows_applies(C) && aligned16(out) && aligned16(inp) && aligned16(weight);
}

kern::RmsArgs rms_args(float* out, float* rstd, const float* inp, const float* weight, int C, float eps) {
  kern::RmsArgs a;
  a.out = out;
  a.rstd = rstd;
  a.inp = inp;
  a.weight = weight;
  a.C = C;
  a.eps = eps;
  return a;
}

__global__ void rmsnorm_backward_kernel(float* dinp, const float* dout, const float* inp, const float* weight, const float* rstd, int C) {
  __shared__ double scratch[32];
  const size_t row = blockIdx.x;
  const float* x = inp + row * C;
  const float* dy = dout + row * C;
  const float r = rstd[row];
  double dot = 0;  // sum_c (dy * w) * xhat
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dot += static_cast<double>(__fmul_rn(dy[c], weight[c])) * __fmul_rn(x[c], r);
  dot = block_sum(dot, scratch);
  const float m = static_cast<float>(dot / C);
  float* dx = dinp + row * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float g = __fmul_rn(dy[c], weight[c]);
    const float xm = __fmul_rn(__fmul_rn(x[c], r), m);
    dx[c] = __fadd_rn(dx[c], __fmul_rn(r, __fsub_rn(g, xm)));
  }
}

// The same for rows of C = 4 k values (k <= 1024 threads, 16-byte aligned arrays) in one pass: each thread keeps a
// float4 of x, dy and the weight in registers, so every array is read once (run 19: the two-pass kernel took 192 us
// per 8192 x 4096 call, ~70 more than its traffic). The same per-element math.
__global__ void __launch_bounds__(1024) rmsnorm_backward_rows_kernel(float* dinp, const float* dout, const float* inp,
                                                                     const float* weight, const float* rstd, int C) {
  __shared__ double scratch[32];
  const size_t row = blockIdx.x;
  const int j = threadIdx.x;
  const bool on = 4 * j < C;
  float4 x = make_float4(0, 0, 0, 0), dy = x, w = x;
  if (on) {
    x = reinterpret_cast<const float4*>(inp + row * C)[j];
    dy = reinterpret_cast<const float4*>(dout + row * C)[j];
    w = reinterpret_cast<const float4*>(weight)[j];
  }
  const float r = rstd[row];
  const float g[4] = {__fmul_rn(dy.x, w.x), __fmul_rn(dy.y, w.y), __fmul_rn(dy.z, w.z), __fmul_rn(dy.w, w.w)};
  const float xh[4] = {__fmul_rn(x.x, r), __fmul_rn(x.y, r), __fmul_rn(x.z, r), __fmul_rn(x.w, r)};
  double dot = 0;  // sum_c (dy * w) * xhat
#pragma unroll
  for (int e = 0; e < 4; e++) dot += static_cast<double>(g[e]) * xh[e];
  dot = block_sum(dot, scratch);
  const float m = static_cast<float>(dot / C);
  if (!on) return;
  float4* dx = reinterpret_cast<float4*>(dinp + row * C) + j;
  float4 d = *dx;
  d.x = __fadd_rn(d.x, __fmul_rn(r, __fsub_rn(g[0], __fmul_rn(xh[0], m))));
  d.y = __fadd_rn(d.y, __fmul_rn(r, __fsub_rn(g[1], __fmul_rn(xh[1], m))));
  d.z = __fadd_rn(d.z, __fmul_rn(r, __fsub_rn(g[2], __fmul_rn(xh[2], m))));
  d.w = __fadd_rn(d.w, __fmul_rn(r, __fsub_rn(g[3], __fmul_rn(xh[3], m))));
  *dx = d;
}

__global__ void rmsnorm_dweight_kernel(float* dweight, const float* dout, const float* inp, const float* rstd, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = dweight[c];
  for (int n = 0; n < N; n++) {
    const size_t i = static_cast<size_t>(n) * C + c;
    s = __fadd_rn(s, __fmul_rn(__fmul_rn(dout[i], inp[i]), rstd[n]));
  }
  dweight[c] = s;
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  Op op("rmsnorm_forward");
  if (N <= 0) return;
  if (rows_path(N, C, out, inp, weight)) {
    Section sec(op.c, "rmsnorm.rows");
    launch_pdl(rmsnorm_rows_kernel, dim3(N), dim3(kern::rms_rows_threads(C)), kern::kRmsSmem, op.s, rms_args(out, rstd, inp, weight, C, eps));
    return;
  }
  rmsnorm_forward_kernel<<<N, kThreads, 0, op.s>>>(out, rstd, inp, weight, C, eps);
  QT_LAUNCH_CHECK();
}

// add, then the rmsnorm_forward kernel chosen for (out, x_out, weight), in one launch: the rows kernel with the add
// fused in, or the one-block-per-row kernel with the add fused in. Addends not 16-byte aligned on the rows path take
// the add kernel and then the rows kernel (two launches, as unfused).
void add_rmsnorm_forward(float* x_out, float* out, float* rstd, const float* a, const float* b, const float* weight, int N,
                         int C, float eps) {
  Op op("add_rmsnorm_forward");
  if (N <= 0) return;
  if (rows_path(N, C, out, x_out, weight)) {
    const kern::RmsArgs args = rms_args(out, rstd, x_out, weight, C, eps);
    if (aligned16(a) && aligned16(b)) {
      Section sec(op.c, "add_rmsnorm.rows");
      launch_pdl(add_rmsnorm_rows_kernel, dim3(N), dim3(kern::rms_rows_threads(C)), kern::kRmsSmem, op.s, args, x_out, a, b);
      return;
    }
    add_launch(x_out, a, b, static_cast<size_t>(N) * C, op.s);
    Section sec(op.c, "rmsnorm.rows");
    launch_pdl(rmsnorm_rows_kernel, dim3(N), dim3(kern::rms_rows_threads(C)), kern::kRmsSmem, op.s, args);
    return;
  }
  add_rmsnorm_forward_kernel<<<N, kThreads, 0, op.s>>>(x_out, out, rstd, a, b, weight, C, eps);
  QT_LAUNCH_CHECK();
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  Op op("rmsnorm_backward");
  if (N <= 0) return;
  if (C % 4 == 0 && C / 4 <= 1024 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight)) {
    rmsnorm_backward_rows_kernel<<<N, (C / 4 + 31) / 32 * 32, 0, op.s>>>(dinp, dout, inp, weight, rstd, C);
  } else {
    rmsnorm_backward_kernel<<<N, kThreads, 0, op.s>>>(dinp, dout, inp, weight, rstd, C);
  }
  QT_LAUNCH_CHECK();
  if (dweight) {
    rmsnorm_dweight_kernel<<<grid_for(static_cast<size_t>(C), kThreads), kThreads, 0, op.s>>>(dweight, dout, inp, rstd, N, C);
    QT_LAUNCH_CHECK();
  }
}

}  // namespace qt::cuda
