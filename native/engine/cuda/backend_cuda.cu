// The `cuda` backend table (backend.h): the ops of engine/cuda, in the table's order. Built only where the
// toolkit has cuBLAS (QT_HAVE_CUDA); in the kernels-only check build this file compiles but is not linked.
#include "ops.cuh"

namespace qt {

namespace {

const Backend kCuda = {
    "cuda",
    cuda::set_device,
    cuda::alloc,
    cuda::free,
    cuda::upload,
    cuda::download,
    cuda::copy,
    cuda::zero,
    cuda::memory_info,
    cuda::native_bf16,
    cuda::embedding_forward,
    cuda::embedding_backward,
    cuda::neftune_forward,
    cuda::rmsnorm_forward,
    cuda::rmsnorm_backward,
    cuda::add_rmsnorm_forward,
    cuda::rope_forward,
    cuda::rope_backward,
    cuda::rope_forward_qk,
    cuda::attention_forward,
    cuda::attention_backward,
    cuda::swiglu_forward,
    cuda::swiglu_backward,
    cuda::matmul_forward,
    cuda::matmul_forward_many,
    cuda::matmul_backward,
    cuda::keep_weights,
    cuda::matmul_forward_t,
    cuda::matmul_backward_t,
    cuda::swiglu_forward_bf16,
    cuda::swiglu_backward_bf16,
    cuda::dequantize,
    cuda::nf4_quantize,
    cuda::nf4_double_quant,
    cuda::lora_forward,
    cuda::lora_backward,
    cuda::cross_entropy_forward,
    cuda::cross_entropy_backward,
    cuda::cross_entropy_fused,
    cuda::argmax_rows,
    cuda::add,
    cuda::to_bf16,
    cuda::from_bf16,
    cuda::scale,
    cuda::sum_squares,
    cuda::adamw_update,
};

}  // namespace

#ifndef QT_CUDA_KERNELS_ONLY
const Backend* cuda_backend() { return &kCuda; }
void cuda_list_devices(std::vector<DeviceInfo>& out) { cuda::list_devices(out); }
#else
const Backend* cuda_backend_check() { return &kCuda; }  // keeps the table compiled in the check build
#endif

}  // namespace qt
