// The `cpu` backend table: host memory plus the reference ops of engine/cpu. Also the device selection
// and, in builds without CUDA, the empty CUDA hooks.
#include <cstdlib>
#include <cstring>
#include <new>

#include "engine.h"
#include "nf4.h"
#include "ops.h"

namespace qt {

void host_memory_info(uint64_t* free_bytes, uint64_t* total_bytes);  // devices.cpp

namespace {

void* cpu_alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  // 64-byte aligned (cache lines, SIMD); sizes rounded up as aligned_alloc requires.
  size_t rounded = (bytes + 63) / 64 * 64;
#ifdef _WIN32
  void* p = _aligned_malloc(rounded, 64);
#else
  void* p = std::aligned_alloc(64, rounded);
#endif
  if (!p) QT_FAIL(ErrorCode::OutOfMemory, "out of host memory allocating " + std::to_string(bytes >> 20) + " MiB");
  return p;
}

void cpu_free(void* p) {
#ifdef _WIN32
  _aligned_free(p);
#else
  std::free(p);
#endif
}

void cpu_memcpy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void cpu_set_device(int) {}

void cpu_zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

bool cpu_native_bf16() { return false; }  // the CPU computes in fp32

bool cpu_keep_weights(void*, size_t) { return false; }  // the CPU multiplies NF4 rows as it dequantizes them

const Backend kCpu = {
    "cpu",
    cpu_set_device,
    cpu_alloc,
    cpu_free,
    cpu_memcpy,
    cpu_memcpy,
    cpu_memcpy,
    cpu_zero,
    host_memory_info,
    cpu_native_bf16,
    cpu::embedding_forward,
    cpu::embedding_backward,
    cpu::neftune_forward,
    cpu::rmsnorm_forward,
    cpu::rmsnorm_backward,
    cpu::add_rmsnorm_forward,
    cpu::rope_forward,
    cpu::rope_backward,
    cpu::rope_forward_qk,
    cpu::attention_forward,
    cpu::attention_backward,
    cpu::swiglu_forward,
    cpu::swiglu_backward,
    cpu::matmul_forward,
    cpu::matmul_forward_many,
    cpu::matmul_backward,
    cpu_keep_weights,
    cpu::matmul_forward_t,
    cpu::matmul_backward_t,
    cpu::swiglu_forward_bf16,
    cpu::swiglu_backward_bf16,
    cpu::dequantize,
    nf4_quantize_blocks,
    nf4_double_quantize,
    cpu::lora_forward,
    cpu::lora_backward,
    cpu::cross_entropy_forward,
    cpu::cross_entropy_backward,
    cpu::cross_entropy_fused,
    cpu::argmax_rows,
    cpu::add,
    cpu::to_bf16,
    cpu::from_bf16,
    cpu::scale,
    cpu::sum_squares,
    cpu::adamw_update,
};

}  // namespace

const Backend& cpu_backend() { return kCpu; }

#ifndef QT_HAVE_CUDA
const Backend* cuda_backend() { return nullptr; }
void cuda_list_devices(std::vector<DeviceInfo>&) {}
#endif

const Backend& backend_for_device(const std::string& device, int* index) {
  *index = 0;
  if (device == "cpu") return cpu_backend();
  if (device.rfind("cuda", 0) == 0) {
    int n = 0;
    if (device != "cuda") {
      if (device.size() < 6 || device[4] != ':') QT_FAIL(ErrorCode::InvalidArgument, "device '" + device + "': use \"cpu\" or \"cuda:<n>\"");
      char* end = nullptr;
      long v = std::strtol(device.c_str() + 5, &end, 10);
      if (*end != '\0' || v < 0 || v > 1024) QT_FAIL(ErrorCode::InvalidArgument, "device '" + device + "': bad CUDA device number");
      n = static_cast<int>(v);
    }
    const Backend* cuda = cuda_backend();
    if (!cuda) QT_FAIL(ErrorCode::Unsupported, "this build of the engine has no CUDA backend (it was built without the CUDA toolkit); use device \"cpu\"");
    *index = n;
    return *cuda;
  }
  QT_FAIL(ErrorCode::InvalidArgument, "device '" + device + "': use \"cpu\" or \"cuda:<n>\"");
}

}  // namespace qt
