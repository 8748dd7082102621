// NF4 on the GPU (ENGINE_FACTS §4): quantization at load time (the same codes, absmax, double-quant codes and
// scales as nf4.cpp, bit for bit), dequantization to fp32 (the backend op) or to the GEMM operand type, and
// dense conversions. Every multiply/add that must match the CPU is an explicitly rounded intrinsic
// (__fmul_rn, __fadd_rn): the compiler must not fuse them into an FMA, or the result would differ in the last bit.
//   w = code[idx] * absmax_b,  absmax_b = map[q_b] * scale_{b/256} + offset  (double quant)
// Dequantization: one thread per byte of codes (2 weights; run 1's kernel, kept for odd sizes and
// QT_CUDA_DEQUANT=simple) or the vectorised kernel of nf4_kernels.h (16-byte loads and stores, bit-identical).
// Decode: matmuls of <= 4 rows multiply straight from the codes: nf4_gemv4 (nf4_kernels.h: one row, x staged in shared
// memory, also several weights sharing x in one launch; QT_CUDA_GEMV=4) with its code values found as QT_CUDA_GEMV says:
// 7 (the default) an fp16 pair table for 16-bit compute (half the shared-memory reads; fp32 compute takes 6), 6 offset
// table lookups (the same bits as 4); nf4_gemv3 (more rows, and QT_CUDA_GEMV=3), run 2's nf4_gemv (QT_CUDA_GEMV=1).
#include <cstdio>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include "nf4.h"
#include "nf4_kernels.h"
#include "ops.cuh"

namespace qt::cuda {

__constant__ float c_nf4[16];      // NF4 code values
__constant__ float c_nf4_mid[15];  // decision thresholds (midpoints), as nf4.cpp computes them
__constant__ float c_dmap[256];    // bnb's signed dynamic map
__device__ float g_nf4_tab[kern::kNf4TabSize];  // the codes, then the map, in global memory: a block's coalesced
                                                // copy into shared memory (constant memory serialises a warp's
                                                // 32 different addresses)

void nf4_init_constants() {
  float mid[15];
  for (int i = 0; i < 15; i++) mid[i] = (kNf4Codes[i] + kNf4Codes[i + 1]) * 0.5f;  // same expression as nf4.cpp
  QT_CUDA_CHECK(cudaMemcpyToSymbol(c_nf4, kNf4Codes, sizeof(float) * 16));
  QT_CUDA_CHECK(cudaMemcpyToSymbol(c_nf4_mid, mid, sizeof(float) * 15));
  QT_CUDA_CHECK(cudaMemcpyToSymbol(c_dmap, dynamic_map(), sizeof(float) * 256));
  float tab[kern::kNf4TabSize];
  for (int i = 0; i < kern::kNf4TabSize; i++) tab[i] = i < 16 ? kNf4Codes[i] : dynamic_map()[i - 16];
  QT_CUDA_CHECK(cudaMemcpyToSymbol(g_nf4_tab, tab, sizeof(tab)));
}

namespace {

struct Nf4View {  // a Weight's NF4 fields as kernel arguments
  const uint8_t* codes;
  const float* absmax;
  const uint8_t* absmax_q;
  const float* absmax_scale;
  float offset;
  bool dq;
};

__device__ __forceinline__ float block_absmax(const Nf4View& w, int64_t b) {
  if (!w.dq) return w.absmax[b];
  return __fadd_rn(__fmul_rn(c_dmap[w.absmax_q[b]], w.absmax_scale[b / kDqBlockSize]), w.offset);
}

// out[2*j], out[2*j+1] from byte j (even element = high nibble)
template <class T>
__global__ void nf4_dequant_kernel(T* out, Nf4View w, int64_t n) {
  const int64_t nbytes = (n + 1) / 2;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < nbytes;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint8_t byte = w.codes[j];
    const int64_t i = 2 * j;
    const float am = block_absmax(w, i / kNf4BlockSize);  // i and i+1 share a block (64 is even)
    out[i] = from_float<T>(__fmul_rn(c_nf4[byte >> 4], am));
    if (i + 1 < n) out[i + 1] = from_float<T>(__fmul_rn(c_nf4[byte & 0x0f], am));
  }
}

template <class T>
__global__ void dense_convert_kernel(T* out, const void* in, DType t, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = from_float<T>(load_dense(in, t, i));
}

// Same-type copy of 16-bit values (bf16 -> bf16 etc. is a memcpy; handled by the caller).

// ---- the vectorised kernels (nf4_kernels.h): the 16 codes and the dynamic map go to shared memory first ----

__device__ __forceinline__ float* nf4_table_to_smem() {
  kern::DevCtx c;
  float* tab = reinterpret_cast<float*>(c.smem());
  for (int i = threadIdx.x; i < kern::kNf4TabSize; i += blockDim.x) tab[i] = i < 16 ? c_nf4[i] : c_dmap[i - 16];
  __syncthreads();
  return tab;
}

template <kern::DqOut OUT>
__global__ void __launch_bounds__(256) nf4_dequant_vec_kernel(void* out, kern::Nf4Args w, int64_t nchunks) {
  const float* tab = nf4_table_to_smem();
  kern::DevCtx c;
  kern::nf4_dequant_vec<OUT>(c, out, w, nchunks, tab);
}

template <kern::DqOut OUT>
__global__ void __launch_bounds__(256) nf4_dequant16_kernel(void* out, kern::Nf4Args w, int64_t nunits) {
  kern::DevCtx c;
  float* tab = reinterpret_cast<float*>(c.smem());
  for (int i = threadIdx.x; i < kern::kNf4TabSize; i += blockDim.x) tab[i] = g_nf4_tab[i];
  __syncthreads();
  kern::nf4_dequant16<OUT>(c, out, w, nunits, tab);
}

template <int NR>
__global__ void __launch_bounds__(kern::kGemvThreads) nf4_gemv_kernel(kern::GemvArgs a) {
  const float* tab = nf4_table_to_smem();
  kern::DevCtx c;
  kern::nf4_gemv<NR>(c, a, tab);
}

template <int NR>
__global__ void __launch_bounds__(kern::kGemv3Threads) nf4_gemv3_kernel(kern::GemvArgs a) {
  kern::DevCtx c;
  float* tab = reinterpret_cast<float*>(c.smem());
  for (int i = threadIdx.x; i < kern::kNf4TabSize; i += blockDim.x) tab[i] = g_nf4_tab[i];
  __syncthreads();
  kern::nf4_gemv3<NR>(c, a, tab);
}

// Blocks of nf4_gemv3_kernel<NR> that fit on the device at once (its persistent grid), per (NR, device).
template <int NR>
int gemv3_resident_blocks(const DeviceCtx& dc) {
  static std::mutex mu;
  static std::map<int, int> per_device;
  std::lock_guard<std::mutex> lk(mu);
  auto it = per_device.find(dc.device);
  if (it != per_device.end()) return it->second;
  int per_sm = 0;
  QT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, nf4_gemv3_kernel<NR>, kern::kGemv3Threads, kern::kGemv3Smem));
  const int blocks = (per_sm < 1 ? 1 : per_sm) * dc.prop.multiProcessorCount;
  per_device[dc.device] = blocks;
  return blocks;
}

// nf4_gemv4: RW rows per warp, U chunks per row and step (RW x U = 8 loads in flight per lane). At most 80 registers
// (3 blocks of 256 threads per SM: 24 warps; run 4's gemv4 with RW = 4 used 94 and got 2 blocks). LUT: how code values
// are found (kern::Lut: gemv4, gemv6, gemv7). The tables are constant data, filled before the PDL wait.
template <int RW, int U, int LUT>
__global__ void __launch_bounds__(kern::kGemv3Threads, 3) nf4_gemv4_kernel(kern::GemvArgs a) {
  kern::DevCtx c;
  float* tab = reinterpret_cast<float*>(c.smem());
  float* xs = tab + kern::kNf4TabSize;
  uint32_t* ptab = reinterpret_cast<uint32_t*>(xs + kern::gemv4_xs_floats(a.C));
  for (int i = threadIdx.x; i < kern::kNf4TabSize; i += blockDim.x) tab[i] = g_nf4_tab[i];  // constant data
  if (LUT == kern::kLutPairF16) {
    __syncthreads();
    kern::nf4_pair_fill(c, ptab, tab);
  }
  kern::grid_dep_wait();  // launched with PDL (launch_pdl): x is the previous kernel's output
  if (!a.late_trigger) kern::grid_dep_launch_dependents();
  kern::nf4_gemv_stage_x(c, xs, a.x, a.C);
  __syncthreads();
  kern::nf4_gemv3<1, true, RW, U, LUT>(c, a, tab, xs, ptab);
}

// Resident blocks of nf4_gemv4_kernel<RW, U, LUT> with `smem` bytes of shared memory (its persistent grid), per device.
template <int RW, int U, int LUT>
int gemv4_resident_blocks(const DeviceCtx& dc, int smem) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, int> cap_of;  // (device, smem) -> blocks
  static std::map<int, bool> attr_set;               // device -> the kernel may use the opt-in shared memory
  std::lock_guard<std::mutex> lk(mu);
  if (smem > 48 * 1024 && !attr_set[dc.device]) {
    QT_CUDA_CHECK(cudaFuncSetAttribute(nf4_gemv4_kernel<RW, U, LUT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(dc.prop.sharedMemPerBlockOptin)));
    attr_set[dc.device] = true;
  }
  auto it = cap_of.find({dc.device, smem});
  if (it == cap_of.end()) {
    int per_sm = 0;
    QT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, nf4_gemv4_kernel<RW, U, LUT>, kern::kGemv3Threads, smem));
    it = cap_of.emplace(std::make_pair(dc.device, smem), (per_sm < 1 ? 1 : per_sm) * dc.prop.multiProcessorCount).first;
  }
  return it->second;
}

template <int RW, int U, int LUT>
void gemv4_launch_rw(kern::GemvArgs a, int smem, cudaStream_t s) {
  a.late_trigger = paths().pdl == 2;
  const int cap = gemv4_resident_blocks<RW, U, LUT>(device_ctx(), smem);
  const int groups = kern::gemv_groups<RW>(a);
  const int want = (groups + kern::kGemv3Threads / 32 - 1) / (kern::kGemv3Threads / 32);
  launch_pdl(nf4_gemv4_kernel<RW, U, LUT>, dim3(static_cast<unsigned>(want < cap ? want : cap)), dim3(kern::kGemv3Threads),
             static_cast<size_t>(smem), s, a);
}

template <int LUT>
void gemv4_launch_lut(const kern::GemvArgs& a, int rw, cudaStream_t s) {
  const int smem = kern::gemv4_smem_bytes(a.C, LUT);
  if (rw == 2) gemv4_launch_rw<2, 4, LUT>(a, smem, s);
  else gemv4_launch_rw<1, 8, LUT>(a, smem, s);
}

// nf4_gemv4 / 6 / 7 for one row (a.OC rows, or all of a.seg's): launched when its shared memory (table + staged x, for
// gemv 7 + the pair table, else gemv 6) fits the device; false: the caller takes nf4_gemv3. gemv 7 serves weights multiplied in
// 16-bit compute (f16_ok); fp32 compute keeps gemv 6's exact products. Rows per warp: QT_CUDA_GEMV_ROWS (1 or 2),
// else 2 for more than 2048 rows and 1 below (run 4 on an H200, us per call: q/o 9.6 with 2 rows, 11.4 with 1 (10.5
// with 4, since dropped: it spills with segments); down 24.1 / 31.7; gate/up 21.2 / 25.1; k/v 6.7 / 6.3).
bool gemv4_launch(const kern::GemvArgs& a, int rows, bool f16_ok, cudaStream_t s) {
  const DeviceCtx& dc = device_ctx();
  const int optin = static_cast<int>(dc.prop.sharedMemPerBlockOptin);
  int lut = paths().gemv == 7 && f16_ok ? kern::kLutPairF16 : paths().gemv >= 6 ? kern::kLutOffset : kern::kLutNibble;
  if (lut == kern::kLutPairF16 && kern::gemv4_smem_bytes(a.C, lut) > optin) lut = kern::kLutOffset;  // e.g. sm_75's 64 KB
  if (kern::gemv4_smem_bytes(a.C, lut) > optin) return false;
  int rw = paths().gemv_rows;
  if (rw == 0) rw = rows > 2048 ? 2 : 1;
  if (lut == kern::kLutPairF16) gemv4_launch_lut<kern::kLutPairF16>(a, rw, s);
  else if (lut == kern::kLutOffset) gemv4_launch_lut<kern::kLutOffset>(a, rw, s);
  else gemv4_launch_lut<kern::kLutNibble>(a, rw, s);
  return true;
}

template <int NR>
void gemv3_launch(const kern::GemvArgs& a, cudaStream_t s) {
  const int groups = (a.OC + kern::kGemv3RowsPerWarp - 1) / kern::kGemv3RowsPerWarp;
  const int want = (groups + kern::kGemv3Threads / 32 - 1) / (kern::kGemv3Threads / 32);
  const int cap = gemv3_resident_blocks<NR>(device_ctx());
  nf4_gemv3_kernel<NR><<<static_cast<unsigned>(want < cap ? want : cap), kern::kGemv3Threads, kern::kGemv3Smem, s>>>(a);
  QT_LAUNCH_CHECK();
}

kern::Nf4Args nf4_args(const Weight& w) {
  kern::Nf4Args a;
  a.codes = static_cast<const uint8_t*>(w.data);
  a.absmax = w.absmax;
  a.absmax_q = w.absmax_q;
  a.absmax_scale = w.absmax_scale;
  a.offset = w.absmax_offset;
  a.dq = w.double_quant;
  return a;
}

template <class T>
constexpr kern::DqOut dq_out() {
  return std::is_same<T, float>::value ? kern::DqOut::F32 : std::is_same<T, __nv_bfloat16>::value ? kern::DqOut::BF16 : kern::DqOut::F16;
}

template <class T>
void launch_vec(T* out, const Weight& w, int64_t n, cudaStream_t s) {
  const int64_t nchunks = n / 32;
  const int64_t want = (nchunks + 255) / 256;
  const int64_t cap = static_cast<int64_t>(device_ctx().prop.multiProcessorCount) * 8;
  const unsigned blocks = static_cast<unsigned>(want < cap ? want : cap);
  nf4_dequant_vec_kernel<dq_out<T>()><<<blocks, 256, kern::kNf4TabSize * sizeof(float), s>>>(out, nf4_args(w), nchunks);
  QT_LAUNCH_CHECK();
}

template <class T>
void launch_vec2(T* out, const Weight& w, int64_t n, cudaStream_t s) {
  static_assert(!std::is_same<T, float>::value, "nf4_dequant16 writes 16-bit values");
  const int64_t nunits = n / 8;
  const int64_t want = (nunits + 1023) / 1024;  // 4 units per thread and step
  const int64_t cap = static_cast<int64_t>(device_ctx().prop.multiProcessorCount) * 8;
  const unsigned blocks = static_cast<unsigned>(want < cap ? want : cap);
  nf4_dequant16_kernel<dq_out<T>()><<<blocks, 256, kern::kNf4TabSize * sizeof(float), s>>>(out, nf4_args(w), nunits);
  QT_LAUNCH_CHECK();
}

// QT_CUDA_DEQUANT=auto: the first 16-bit dequantization of at least 16M weights on a device runs vec then vec2 twice
// each into its output (the same bits) between events, and the faster second run decides for the device.
std::mutex g_auto_mu;
std::map<int, int> g_auto_choice;  // device -> Paths::kDqVec | kDqVec2
std::string g_auto_report;

template <class T>
int auto_choice(T* out, const Weight& w, int64_t n, cudaStream_t s) {
  DeviceCtx& dc = device_ctx();
  std::lock_guard<std::mutex> lk(g_auto_mu);
  auto it = g_auto_choice.find(dc.device);
  if (it != g_auto_choice.end()) return it->second;
  if (n < (int64_t{1} << 24)) return Paths::kDqVec;  // too small to time; decided by a larger one
  cudaEvent_t ev[3];
  for (auto& e : ev) QT_CUDA_CHECK(cudaEventCreate(&e));
  float t_vec = 0, t_vec2 = 0;
  for (int rep = 0; rep < 2; rep++) {  // the first run of each kernel also loads it
    QT_CUDA_CHECK(cudaEventRecord(ev[0], s));
    launch_vec(out, w, n, s);
    QT_CUDA_CHECK(cudaEventRecord(ev[1], s));
    launch_vec2(out, w, n, s);
    QT_CUDA_CHECK(cudaEventRecord(ev[2], s));
    QT_CUDA_CHECK(cudaEventSynchronize(ev[2]));
    QT_CUDA_CHECK(cudaEventElapsedTime(&t_vec, ev[0], ev[1]));
    QT_CUDA_CHECK(cudaEventElapsedTime(&t_vec2, ev[1], ev[2]));
  }
  for (auto& e : ev) cudaEventDestroy(e);
  const int choice = t_vec2 < t_vec ? Paths::kDqVec2 : Paths::kDqVec;
  g_auto_choice[dc.device] = choice;
  char buf[160];
  std::snprintf(buf, sizeof buf, "(%s: vec %.1f us, vec2 %.1f us for %lld weights)", choice == Paths::kDqVec2 ? "vec2" : "vec",
                t_vec * 1e3, t_vec2 * 1e3, static_cast<long long>(n));
  g_auto_report = buf;
  return choice;
}

template <class T>
void dequantize_typed(T* out, const Weight& w, cudaStream_t s) {
  const int64_t n = w.rows * w.cols;
  const int mode = paths().dequant;
  if (w.dtype == DType::NF4 && mode != Paths::kDqSimple && n % 32 == 0 && n > 0 && aligned16(w.data) && aligned16(out)) {
    if constexpr (std::is_same<T, float>::value) {  // vec2 writes 16-bit values only
      launch_vec(out, w, n, s);
    } else {
      const int use = mode == Paths::kDqAuto ? auto_choice(out, w, n, s) : mode;
      if (use == Paths::kDqVec2) launch_vec2(out, w, n, s);
      else launch_vec(out, w, n, s);
    }
    return;
  }
  if (w.dtype == DType::NF4) {
    Nf4View v{static_cast<const uint8_t*>(w.data), w.absmax, w.absmax_q, w.absmax_scale, w.absmax_offset, w.double_quant};
    nf4_dequant_kernel<T><<<grid_for(static_cast<size_t>((n + 1) / 2), 256), 256, 0, s>>>(out, v, n);
  } else {
    dense_convert_kernel<T><<<grid_for(static_cast<size_t>(n), 256), 256, 0, s>>>(out, w.data, w.dtype, n);
  }
  QT_LAUNCH_CHECK();
}

// One warp per block of 64 weights: lane l quantizes elements 2l and 2l+1 (one byte of codes).
__device__ __forceinline__ uint8_t nf4_nearest_dev(float x) {
  uint8_t idx = 0;
  for (int i = 0; i < 15; i++) idx += x > c_nf4_mid[i];  // count thresholds strictly below x (nf4.cpp)
  return idx;
}

__global__ void nf4_quantize_kernel(uint8_t* codes, float* absmax, const void* src, DType t, int64_t n) {
  const int64_t nb = (n + kNf4BlockSize - 1) / kNf4BlockSize;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32; b < nb; b += warps) {
    const int64_t i0 = b * kNf4BlockSize + 2 * lane;
    const float x0 = i0 < n ? load_dense(src, t, i0) : 0.0f;
    const float x1 = i0 + 1 < n ? load_dense(src, t, i0 + 1) : 0.0f;
    const float amax = warp_max(fmaxf(fabsf(x0), fabsf(x1)));  // fmaxf ignores NaN, as std::max(amax, NaN) does
    if (lane == 0) absmax[b] = amax;
    const float inv = amax > 0 ? __fdiv_rn(1.0f, amax) : 0.0f;
    if (i0 < n) {
      const uint8_t c0 = nf4_nearest_dev(__fmul_rn(x0, inv));
      const uint8_t c1 = i0 + 1 < n ? nf4_nearest_dev(__fmul_rn(x1, inv)) : 0;
      codes[i0 / 2] = static_cast<uint8_t>((c0 << 4) | c1);
    }
  }
}

// std::lower_bound + nearer-of-two with ties to the lower value (nf4.cpp dynamic_map_nearest)
__device__ __forceinline__ uint8_t dmap_nearest_dev(float x) {
  int lo = 0, count = 256;
  while (count > 0) {  // first index with map[i] >= x
    const int step = count / 2;
    if (c_dmap[lo + step] < x) {
      lo += step + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  if (lo == 0) return 0;
  if (lo == 256) return 255;
  const float hi_v = c_dmap[lo], lo_v = c_dmap[lo - 1];
  return static_cast<uint8_t>((__fsub_rn(x, lo_v) <= __fsub_rn(hi_v, x)) ? lo - 1 : lo);
}

// One block of 256 threads per double-quant group of 256 absmax values.
__global__ void nf4_double_quant_kernel(uint8_t* absmax_q, float* absmax_scale, const float* absmax, float offset, int64_t nb) {
  __shared__ float scratch[32];
  const int64_t b = blockIdx.x * static_cast<int64_t>(kDqBlockSize) + threadIdx.x;
  const float d = b < nb ? __fsub_rn(absmax[b], offset) : 0.0f;
  const float amax = block_max(fabsf(d), scratch);
  if (threadIdx.x == 0) absmax_scale[blockIdx.x] = amax;
  const float inv = amax > 0 ? __fdiv_rn(1.0f, amax) : 0.0f;
  if (b < nb) absmax_q[b] = dmap_nearest_dev(__fmul_rn(d, inv));
}

}  // namespace

std::string dequant_auto_choice() {
  std::lock_guard<std::mutex> lk(g_auto_mu);
  return g_auto_report;
}

void dequantize_to(void* out, DType out_t, const Weight& w, cudaStream_t s) {
  if (out_t == DType::F32) dequantize_typed(static_cast<float*>(out), w, s);
  else if (out_t == DType::BF16) dequantize_typed(static_cast<__nv_bfloat16*>(out), w, s);
  else dequantize_typed(static_cast<__half*>(out), w, s);
}

bool nf4_gemv_applies(const Weight& w, const float* inp, int N, int C, int OC) {
  return paths().gemv != 0 && w.dtype == DType::NF4 && N >= 1 && N <= 4 && C % 32 == 0 && C > 0 && OC > 0 && aligned16(w.data) &&
         aligned16(inp);
}

bool nf4_gemv(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC, cudaStream_t s) {
  if (!nf4_gemv_applies(w, inp, N, C, OC)) return false;
  kern::GemvArgs a;
  a.out = out;
  a.x = inp;
  a.bias = bias;
  a.w = nf4_args(w);
  a.N = N;
  a.C = C;
  a.OC = OC;
  if (paths().gemv >= 4 && N == 1 && gemv4_launch(a, OC, w.compute != DType::F32, s)) return true;
  if (paths().gemv >= 3) {
    if (N == 1) gemv3_launch<1>(a, s);
    else if (N == 2) gemv3_launch<2>(a, s);
    else if (N == 3) gemv3_launch<3>(a, s);
    else gemv3_launch<4>(a, s);
    return true;
  }
  const unsigned blocks = static_cast<unsigned>((OC + kern::kGemvRowsPerBlock - 1) / kern::kGemvRowsPerBlock);
  const size_t smem = kern::kGemvSmem;
  if (N == 1) nf4_gemv_kernel<1><<<blocks, kern::kGemvThreads, smem, s>>>(a);
  else if (N == 2) nf4_gemv_kernel<2><<<blocks, kern::kGemvThreads, smem, s>>>(a);
  else if (N == 3) nf4_gemv_kernel<3><<<blocks, kern::kGemvThreads, smem, s>>>(a);
  else nf4_gemv_kernel<4><<<blocks, kern::kGemvThreads, smem, s>>>(a);
  QT_LAUNCH_CHECK();
  return true;
}

bool nf4_gemv_many_applies(const float* inp, const Weight* const* ws, int count, int C) {
  if (paths().gemv < 4 || count < 1 || count > kern::kGemvMaxSegs) return false;
  if (kern::gemv4_smem_bytes(C) > static_cast<int>(device_ctx().prop.sharedMemPerBlockOptin)) return false;
  for (int i = 0; i < count; i++)
    if (ws[i]->cols != C || !nf4_gemv_applies(*ws[i], inp, 1, C, static_cast<int>(ws[i]->rows))) return false;
  return true;
}

bool nf4_gemv_many(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases, int count, int C,
                   cudaStream_t s) {
  if (!nf4_gemv_many_applies(inp, ws, count, C)) return false;
  kern::GemvArgs a;
  a.x = inp;
  a.N = 1;
  a.C = C;
  a.nseg = count;
  int rows = 0;
  for (int i = 0; i < count; i++) {
    const Weight& w = *ws[i];
    const int OC = static_cast<int>(w.rows);
    a.seg[i].out = outs[i];
    a.seg[i].bias = biases[i];
    a.seg[i].w = nf4_args(w);
    a.seg[i].OC = OC;
    rows += OC;
  }
  bool f16_ok = true;
  for (int i = 0; i < count; i++) f16_ok = f16_ok && ws[i]->compute != DType::F32;
  return gemv4_launch(a, rows, f16_ok, s);
}

void dequantize(float* out, const Weight& w) {
  Op op("dequantize");
  dequantize_to(out, DType::F32, w, op.s);
}

void nf4_quantize(uint8_t* codes, float* absmax, const void* src, DType src_dtype, int64_t n) {
  Op op("nf4_quantize");
  const int64_t nb = (n + kNf4BlockSize - 1) / kNf4BlockSize;
  nf4_quantize_kernel<<<grid_for(static_cast<size_t>(nb), 8), 256, 0, op.s>>>(codes, absmax, src, src_dtype, n);
  QT_LAUNCH_CHECK();
}

void nf4_double_quant(uint8_t* absmax_q, float* absmax_scale, const float* absmax, float offset, int64_t nb) {
  Op op("nf4_double_quant");
  const int64_t ns = (nb + kDqBlockSize - 1) / kDqBlockSize;
  if (ns > 2147483647) QT_FAIL(ErrorCode::Unsupported, "weight too large for double quantization");
  nf4_double_quant_kernel<<<static_cast<unsigned>(ns), kDqBlockSize, 0, op.s>>>(absmax_q, absmax_scale, absmax, offset, nb);
  QT_LAUNCH_CHECK();
}

namespace {
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// vec8: in and out 16-byte aligned; the first n / 8 * 8 values go 8 at a time (two float4 loads, one 16-byte store:
// run 11 measured the 2-byte scalar stores' kernel at half the memory bandwidth), the rest one by one. Rounding as
// from_float (nearest even) either way.
template <class T>
__global__ void from_f32_kernel(T* out, const float* in, size_t n, bool vec8) {
  const size_t n8 = vec8 ? n / 8 : 0;
  const size_t start = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = start; i < n8; i += stride) {
    const float4 a = reinterpret_cast<const float4*>(in)[2 * i], b = reinterpret_cast<const float4*>(in)[2 * i + 1];
    reinterpret_cast<uint4*>(out)[i] = make_uint4(pack2<T>(a.x, a.y), pack2<T>(a.z, a.w), pack2<T>(b.x, b.y), pack2<T>(b.z, b.w));
  }
  for (size_t i = 8 * n8 + start; i < n; i += stride) out[i] = from_float<T>(in[i]);
}
}  // namespace

void convert_from_f32(void* out, DType out_t, const float* in, size_t n, cudaStream_t s) {
  if (!n) return;
  if (out_t == DType::F32) {
    QT_CUDA_CHECK(cudaMemcpyAsync(out, in, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
    return;
  }
  const bool vec8 = aligned16(out) && aligned16(in);
  const unsigned grid = grid_for(vec8 ? (n + 7) / 8 : n, 256);
  if (out_t == DType::BF16) from_f32_kernel<<<grid, 256, 0, s>>>(static_cast<__nv_bfloat16*>(out), in, n, vec8);
  else from_f32_kernel<<<grid, 256, 0, s>>>(static_cast<__half*>(out), in, n, vec8);
  QT_LAUNCH_CHECK();
}

}  // namespace qt::cuda
