// Launchers of the fused LoRA kernels (lora_kernels.h); matmul_cublas.cu's lora_forward / lora_backward call them
// (QT_CUDA_LORA=fused, for ranks up to 64; the default is cuBLAS since run 2) around the cuBLAS products with B. Kept out of
// matmul_cublas.cu so that the kernels-only build (no cuBLAS) compiles them too.
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

void lora_da_dx_launch(const kern::LoraArgs& a, bool dx, cudaStream_t s) {
  if (a.R <= 8) da_dx<8>(a, dx, s);
  else if (a.R <= 16) da_dx<16>(a, dx, s);
  else if (a.R <= 32) da_dx<32>(a, dx, s);
  else da_dx<64>(a, dx, s);
}

}  // namespace qt::cuda
