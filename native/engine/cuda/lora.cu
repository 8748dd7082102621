// Launchers of the LoRA kernels (lora_kernels.h) that matmul_cublas.cu's lora_forward / lora_backward call around the
// cuBLAS products with B: the forward's tensor-core u = dropout(x) A^T (lora_xa_tc: the default tf32 path with 16-bit
// compute, sm_80+, R <= 64) and the fused SIMT kernels (QT_CUDA_LORA=fused, ranks up to 64; slower, kept selectable).
// Kept out of matmul_cublas.cu so that the kernels-only build (no cuBLAS) compiles them too.
#include "lora_kernels.h"
#include "ops.cuh"

namespace qt::cuda {

namespace {

__global__ void __launch_bounds__(kern::kLoraThreads) lora_xa_kernel(kern::LoraArgs a) {
  kern::DevCtx c;
  kern::lora_xa(c, a);
}

template <int RT>
__global__ void __launch_bounds__(kern::kLoraDaThreads) lora_da_part_kernel(kern::LoraArgs a) {
  kern::DevCtx c;
  kern::lora_da_part<RT>(c, a);
}

// At least 4 blocks (512 threads) per SM for ranks up to 32 (<= 128 registers, no spills with CUDA 13's ptxas), 3 for 64
template <int RT>
__global__ void __launch_bounds__(kern::kLoraTcThreads, RT == 64 ? 3 : 4) lora_xa_tc_kernel(kern::LoraArgs a) {
  kern::DevCtx c;
  kern::lora_xa_tc<RT>(c, a);
}

__global__ void __launch_bounds__(256) lora_xa_tc_sum_kernel(kern::LoraArgs a) {
  kern::DevCtx c;
  kern::lora_xa_tc_sum(c, a);
}

__global__ void __launch_bounds__(256) lora_da_sum_kernel(kern::LoraArgs a) {
  kern::DevCtx c;
  kern::lora_da_sum(c, a);
}

template <int RT>
__global__ void __launch_bounds__(kern::kLoraDxThreads) lora_dx_kernel(kern::LoraArgs a) {
  kern::DevCtx c;
  kern::lora_dx<RT>(c, a);
}

unsigned cdiv(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

template <int RT>
void xa_tc(const kern::LoraArgs& a, cudaStream_t s) {
  lora_xa_tc_kernel<RT><<<dim3(cdiv(a.N, kern::kLoraTcRows), static_cast<unsigned>(a.ks)), kern::kLoraTcThreads,
                          kern::lora_xa_tc_smem<RT>(), s>>>(a);
  QT_LAUNCH_CHECK();
  if (a.ks == 1) return;
  lora_xa_tc_sum_kernel<<<grid_for(static_cast<size_t>(a.N) * a.R, 256), 256, 0, s>>>(a);
  QT_LAUNCH_CHECK();
}

template <int RT>
void da_dx(const kern::LoraArgs& a, bool dx, cudaStream_t s) {
  lora_da_part_kernel<RT><<<dim3(cdiv(a.C, kern::kLoraDaThreads), static_cast<unsigned>(a.S)), kern::kLoraDaThreads,
                            kern::lora_da_smem<RT>(), s>>>(a);
  QT_LAUNCH_CHECK();
  lora_da_sum_kernel<<<grid_for(static_cast<size_t>(a.R) * a.C, 256), 256, 0, s>>>(a);
  QT_LAUNCH_CHECK();
  if (!dx) return;
  lora_dx_kernel<RT><<<dim3(cdiv(a.C, kern::kLoraDxThreads), cdiv(a.N, kern::kLoraDxRows)), kern::kLoraDxThreads,
                       kern::lora_dx_smem<RT>(), s>>>(a);
  QT_LAUNCH_CHECK();
}

}  // namespace

bool lora_fused_applies(int N, int C, int R) { return paths().lora == Paths::kLoraFused && N > 0 && C > 0 && R >= 1 && R <= 64; }

int lora_da_slices(int N) {
  const int s = (N + 255) / 256;
  return s < 1 ? 1 : s > 64 ? 64 : s;
}

void lora_xa_launch(const kern::LoraArgs& a, cudaStream_t s) {
  lora_xa_kernel<<<dim3(cdiv(a.N, 64), cdiv(a.R, 32)), kern::kLoraThreads, kern::kLoraXaSmem, s>>>(a);
  QT_LAUNCH_CHECK();
}

bool lora_xa_tc_applies(int N, int C, int R) {
  return N > 0 && C > 0 && R >= 1 && R <= 64 && device_ctx().prop.major >= 8;  // bf16 mma.sync: sm_80+
}

size_t lora_xa_tc_part_bytes(int N, int C, int R) {
  int ks = 1, kcols = 0;
  kern::lora_xa_tc_split(N, C, ks, kcols);
  return ks > 1 ? static_cast<size_t>(ks) * N * R * sizeof(float) : 0;
}

void lora_xa_tc_launch(kern::LoraArgs a, float* part, cudaStream_t s) {
  kern::lora_xa_tc_split(a.N, a.C, a.ks, a.kcols);
  a.part = part;
  a.xvec = a.C % 4 == 0 && aligned16(a.x);
  a.avec = a.C % 4 == 0 && aligned16(a.A);
  if (a.R <= 8) xa_tc<8>(a, s);
  else if (a.R <= 16) xa_tc<16>(a, s);
  else if (a.R <= 32) xa_tc<32>(a, s);
  else xa_tc<64>(a, s);
}

void lora_da_dx_launch(const kern::LoraArgs& a, bool dx, cudaStream_t s) {
  if (a.R <= 8) da_dx<8>(a, dx, s);
  else if (a.R <= 16) da_dx<16>(a, dx, s);
  else if (a.R <= 32) da_dx<32>(a, dx, s);
  else da_dx<64>(a, dx, s);
}

}  // namespace qt::cuda
