// Shared pieces of the CUDA backend: error checking (CUDA errors become qt::Error: OutOfMemory for failed
// allocations, Device with the CUDA error string otherwise), the per-device context (stream, cuBLAS handle,
// scratch workspace, profiler), the Op guard every table entry opens, and small device helpers.
//
// One context per device, created on first use and kept for the process (like the CUDA runtime's own
// primary contexts): the backend table (backend.h) has no context argument, and all ops of one device go to
// that device's one stream, so they run in the order they were issued. The context's mutex makes each op's
// enqueue atomic, which lets several trainers share a device, the cuBLAS handle and the workspace.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "engine.h"

namespace qt::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);

#define QT_CUDA_CHECK(expr)                                                     \
  do {                                                                          \
    cudaError_t qt_err_ = (expr);                                               \
    if (qt_err_ != cudaSuccess) ::qt::cuda::throw_cuda_error(qt_err_, #expr, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch: launch-configuration errors surface here, execution errors at the next sync.
#define QT_LAUNCH_CHECK() QT_CUDA_CHECK(cudaGetLastError())

struct ProfileMark {
  const char* name;
  cudaEvent_t start, stop;
};

struct DeviceCtx {
  int device = 0;
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  std::mutex mu;                    // one op's enqueue at a time (Op)
  void* blas = nullptr;             // cublasHandle_t (matmul_cublas.cu), created on first GEMM
  void* blas_ws = nullptr;          // cuBLAS workspace (fixed: deterministic results)
  void* ws = nullptr;               // scratch for one op at a time (dequantized weights, bf16 copies, ...)
  size_t ws_bytes = 0;
  bool profiling = false;           // Op/Section record events (profile_begin/profile_end)
  std::vector<ProfileMark> marks;   // this profile's marks
  std::vector<cudaEvent_t> event_pool;
  size_t events_used = 0;
  // matmul_forward's bf16/fp16 copy of its fp32 input sits at the start of the workspace (matmul_cublas.cu); the
  // next matmul_forward on the same input (q/k/v share xn1, gate/up share xn2) reuses it while no other op has run
  // since (op_seq unchanged: every Op but matmul_forward / lora_forward bumps it), no write of those two touched
  // the source, and the workspace was not replaced. QT_CUDA_XCACHE=0 turns it off.
  uint64_t op_seq = 0;
  const void* xconv_src = nullptr;
  size_t xconv_n = 0;
  DType xconv_t = DType::F32;
  uint64_t xconv_seq = 0;
  // keep_weights (backend.h; matmul_cublas.cu): converted weight copies kept in the owner thread's memory [keep_mem,
  // keep_mem + keep_bytes) for that thread's later matmuls, bump-allocated in call order (256-byte aligned).
  struct Kept {
    const void* data;
    DType dtype, compute;
    int64_t rows, cols;
    void* copy;
  };
  char* keep_mem = nullptr;
  size_t keep_bytes = 0, keep_used = 0;
  std::thread::id keep_owner;
  std::vector<Kept> kept;
};

/** The calling thread's current device's context (created on first use). */
DeviceCtx& device_ctx();

/** Scratch memory of at least `bytes` for the op in progress (grows, never shrinks; OutOfMemory if it can't). */
void* workspace(DeviceCtx& c, size_t bytes);

/** Lays out several scratch arrays in one workspace request (256-byte aligned):
 *    Carve k(c); size_t a = k.add(bytes_a), b = k.add(bytes_b); char* base = k.commit(); */
class Carve {
 public:
  explicit Carve(DeviceCtx& c) : c_(c) {}
  size_t add(size_t bytes) {
    const size_t off = total_;
    total_ += (bytes + 255) / 256 * 256;
    return off;
  }
  char* commit() { return static_cast<char*>(workspace(c_, total_ ? total_ : 256)); }

 private:
  DeviceCtx& c_;
  size_t total_ = 0;
};

/** Every table entry opens one: makes the op's enqueue atomic on its device and, while profiling, records
 *  a pair of events around it. */
class Op {
 public:
  /** keeps_inputs: the op writes only its named outputs (matmul_forward, lora_forward), which it reports with
   *  note_write; every other op may write anything and invalidates the cached input copy. */
  explicit Op(const char* name, bool keeps_inputs = false);
  ~Op();
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;
  DeviceCtx& c;
  cudaStream_t s;

 private:
  std::lock_guard<std::mutex> lock_;
  int mark_ = -1;
};

/** A named part of an op while profiling (no lock). */
class Section {
 public:
  Section(DeviceCtx& c, const char* name);
  ~Section();

 private:
  DeviceCtx& c_;
  int mark_ = -1;
};

/** An op that keeps its inputs wrote [p, p + bytes): drops the cached input copy if that was its source. */
void note_write(DeviceCtx& c, const void* p, size_t bytes);

int profile_mark_begin(DeviceCtx& c, const char* name);
void profile_mark_end(DeviceCtx& c, int mark);

// ---- launch helpers -----------------------------------------------------------------------------------

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline unsigned grid_for(size_t n, unsigned threads, unsigned cap = 65535u * 16u) {
  size_t g = (n + threads - 1) / threads;
  if (g < 1) g = 1;
  return static_cast<unsigned>(g < cap ? g : cap);
}

// Element types as device values
template <class T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

/** Reads element i of a dense array of dtype F32 / F16 / BF16 as float (exact). */
__device__ __forceinline__ float load_dense(const void* p, DType t, int64_t i) {
  if (t == DType::BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (t == DType::F16) return __half2float(static_cast<const __half*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// Deterministic block reductions (fixed tree order). `scratch` holds 32 values of T.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <class T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nw ? scratch[lane] : T(0);
  if (warp == 0) r = warp_sum(r);
  if (threadIdx.x == 0) scratch[0] = r;
  __syncthreads();
  return scratch[0];
}
__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : -INFINITY;
  if (warp == 0) r = warp_max(r);
  if (threadIdx.x == 0) scratch[0] = r;
  __syncthreads();
  return scratch[0];
}

}  // namespace qt::cuda
