// RMSNorm on the GPU (cpu/rmsnorm.cpp): one block per row; the sum of squares and the backward dot product
// are accumulated in double, as on the CPU, with a fixed tree order (deterministic). dweight, when asked,
// sums rows serially per column (the CPU's order). Forward over <= 256 rows (decode, short prompts) runs
// decode_kernels.h's rmsnorm_rows (QT_CUDA_DECODE=1): a block as wide as the row, which it reads once.
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

__global__ void __launch_bounds__(1024) rmsnorm_rows_kernel(kern::RmsArgs a) {
  kern::DevCtx c;
  kern::rmsnorm_rows(c, a);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

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
  if (paths().decode && N <= 256 && kern::rms_rows_applies(C) && aligned16(out) && aligned16(inp) && aligned16(weight)) {
    kern::RmsArgs a;
    a.out = out;
    a.rstd = rstd;
    a.inp = inp;
    a.weight = weight;
    a.C = C;
    a.eps = eps;
    Section sec(op.c, "rmsnorm.rows");
    rmsnorm_rows_kernel<<<N, kern::rms_rows_threads(C), kern::kRmsSmem, op.s>>>(a);
    QT_LAUNCH_CHECK();
    return;
  }
  rmsnorm_forward_kernel<<<N, kThreads, 0, op.s>>>(out, rstd, inp, weight, C, eps);
  QT_LAUNCH_CHECK();
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  Op op("rmsnorm_backward");
  if (N <= 0) return;
  rmsnorm_backward_kernel<<<N, kThreads, 0, op.s>>>(dinp, dout, inp, weight, rstd, C);
  QT_LAUNCH_CHECK();
  if (dweight) {
    rmsnorm_dweight_kernel<<<grid_for(static_cast<size_t>(C), kThreads), kThreads, 0, op.s>>>(dweight, dout, inp, rstd, N, C);
    QT_LAUNCH_CHECK();
  }
}

}  // namespace qt::cuda
