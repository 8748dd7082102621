// Portable kernel bodies: the tensor-core attention, the NF4 GEMV and the vectorised dequantization are written
// once as templates over a context `Ctx` that supplies the thread/block indices, shared memory and the collective
// operations (block barrier, warp shuffle, the bf16 mma.sync m16n8k16 tile product). On the GPU the context is
// DevCtx below (each call is one intrinsic or one PTX instruction, inlined away); on the development machine,
// which has no GPU, native/tests/warpsim.h runs the SAME bodies with a cooperative-fiber simulator of a thread
// block, whose collectives follow the PTX ISA's definitions (fragment layouts included). So the kernels' index
// arithmetic, tiling, masking and numerics are tested by the CPU test suite against the CPU ops.
//
// This header must compile as plain C++17 (g++, no CUDA headers) as well as under nvcc.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define QT_KFN __host__ __device__ __forceinline__
#else
#define QT_KFN inline
#endif
#if defined(__CUDA_ARCH__)
#define QT_UNROLL _Pragma("unroll")
#else
#define QT_UNROLL  // the host compiler (simulator, nvcc's host pass) gets no unroll pragma
#endif

// The tensor-core paths need bf16 mma.sync, ldmatrix and cp.async (sm_80+). Bodies compiled for older targets are empty stubs; the
// host side never launches them there (it checks the device's compute capability first).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define QT_NO_BF16_MMA 1
#endif

namespace qt::kern {

// ---- scalar helpers (same results on host and device) ---------------------------------------------------------

/** Round-to-nearest-even fp32 -> bf16 bits (as qt::f32_to_bf16 and __float2bfloat16_rn; inputs here are finite). */
QT_KFN uint16_t bf16_bits(float f) {
#if defined(__CUDA_ARCH__)
  __nv_bfloat16 h = __float2bfloat16_rn(f);
  return *reinterpret_cast<uint16_t*>(&h);
#else
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
#endif
}

QT_KFN float bf16_value(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
#else
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

QT_KFN uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

/** Bits of an fp16 value, round to nearest even (finite inputs). */
QT_KFN uint16_t f16_bits(float f) {
#if defined(__CUDA_ARCH__)
  __half h = __float2half_rn(f);
  return *reinterpret_cast<uint16_t*>(&h);
#else
  // IEEE half from float, round to nearest even (subnormals included)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (x < 0x38800000u) {                                               // subnormal half (or zero)
    if (x < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14 .. 24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = x - 0x38000000u;  // rebias exponent 127 -> 15
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return static_cast<uint16_t>(sign | r);
#endif
}

/** The value of fp16 bits h (exact). */
QT_KFN float f16_value(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu, bits;
  if (e == 31) {
    bits = sign | 0x7f800000u | m << 13;
  } else if (e != 0) {
    bits = sign | (e + 112u) << 23 | m << 13;
  } else if (m == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    uint32_t ee = 113;
    while (!(m & 0x400u)) {
      m <<= 1;
      ee--;
    }
    bits = sign | ee << 23 | (m & 0x3ffu) << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

/** Two floats as a bf16 pair in one 32-bit register: `lo` in bits 0..15 (the lower-indexed element), `hi` above. On the
 *  GPU one cvt.rn.bf16x2.f32 (the same bits as two roundings). */
QT_KFN uint32_t pack_bf16(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
#else
  return static_cast<uint32_t>(bf16_bits(lo)) | (static_cast<uint32_t>(bf16_bits(hi)) << 16);
#endif
}

/** Two floats as an fp16 pair, round to nearest even, for values known to be in range (the attention probabilities,
 *  <= 1): one cvt.rn.f16x2.f32 on the GPU, no clamp. */
QT_KFN uint32_t pack_f16_rn(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
#else
  return static_cast<uint32_t>(f16_bits(lo)) | (static_cast<uint32_t>(f16_bits(hi)) << 16);
#endif
}

/** fp16 bits of x clamped to the finite range (+-65504): never inf, whatever the input's size. */
QT_KFN uint16_t f16_bits_sat(float x) { return f16_bits(x > 65504.0f ? 65504.0f : x < -65504.0f ? -65504.0f : x); }

/** Two floats as an fp16 pair (saturating), `lo` in bits 0..15. */
QT_KFN uint32_t pack_f16(float lo, float hi) {
  return static_cast<uint32_t>(f16_bits_sat(lo)) | (static_cast<uint32_t>(f16_bits_sat(hi)) << 16);
}

/** 32-bit load of two adjacent bf16 values from shared memory (4-byte aligned). */
QT_KFN uint32_t lds32(const uint16_t* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint32_t*>(p);
#else
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}

QT_KFN void sts32(uint16_t* p, uint32_t v) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint32_t*>(p) = v;
#else
  std::memcpy(p, &v, 4);
#endif
}

struct F4 {
  float x, y, z, w;
};
struct U4 {
  uint32_t x, y, z, w;
};

/** 16-byte loads and stores (p 16-byte aligned). */
QT_KFN F4 ldg4(const float* p) {
#if defined(__CUDA_ARCH__)
  const float4 v = *reinterpret_cast<const float4*>(p);
  return F4{v.x, v.y, v.z, v.w};
#else
  F4 v;
  std::memcpy(&v, p, 16);
  return v;
#endif
}

QT_KFN uint32_t ldg32(const void* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint32_t*>(p);
#else
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}

/** 16 bytes of data that no thread writes while the kernel runs (the NF4 codes): a global load through the read-only
 *  path (ld.global.nc), whatever the compiler can infer about the pointer's address space. */
QT_KFN U4 ldg16(const void* p) {
#if defined(__CUDA_ARCH__)
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  return U4{v.x, v.y, v.z, v.w};
#else
  U4 v;
  std::memcpy(&v, p, 16);
  return v;
#endif
}

/** Read-only scalar global loads (as ldg16): the NF4 statistics. */
QT_KFN float ldg_f32(const float* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}
QT_KFN uint8_t ldg_u8(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}

/** 16-byte shared-memory load (p 16-byte aligned). */
QT_KFN U4 lds16(const uint16_t* p) {
#if defined(__CUDA_ARCH__)
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  return U4{v.x, v.y, v.z, v.w};
#else
  U4 v;
  std::memcpy(&v, p, 16);
  return v;
#endif
}

QT_KFN void stg16(void* p, U4 v) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint4*>(p) = make_uint4(v.x, v.y, v.z, v.w);
#else
  std::memcpy(p, &v, 16);
#endif
}

/** x * y rounded once (no FMA contraction: the NF4 dequantization must match the CPU bit for bit). */
QT_KFN float mul_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(x, y);
#else
  volatile float r = x * y;
  return r;
#endif
}

QT_KFN float add_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(x, y);
#else
  volatile float r = x + y;
  return r;
#endif
}

QT_KFN int imin(int a, int b) { return a < b ? a : b; }
QT_KFN int imax(int a, int b) { return a > b ? a : b; }
QT_KFN float fmax2(float a, float b) { return a > b ? a : b; }  // no NaN inputs here

/** Programmatic dependent launch (sm_90+; launch_pdl in ops.cuh): a kernel launched that way may start while the kernel
 *  before it in the stream is still finishing. grid_dep_wait() returns once that kernel has completed and its memory
 *  writes are visible, so a PDL kernel calls it before it reads or writes anything the previous kernels use (only
 *  constant data, such as the NF4 table, may be touched before). grid_dep_launch_dependents() then lets the next PDL
 *  kernel start launching (its blocks wait in their own grid_dep_wait). Both are no-ops in a kernel launched the usual
 *  way, on older GPUs and in the simulator. */
QT_KFN void grid_dep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
QT_KFN void grid_dep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/** Both, in order: the usual start of a PDL kernel. */
QT_KFN void grid_dep_begin() {
  grid_dep_wait();
  grid_dep_launch_dependents();
}

/** The sum of v over a warp's 32 lanes, in every lane: an xor tree in a fixed order (16, 8, 4, 2, 1), so the
 *  result is the same bits in every lane and every run. Any context with shfl_xor (DevCtx, the simulator's). */
template <class Ctx, class T>
QT_KFN T warp_xor_sum(Ctx& c, T v) {
  QT_UNROLL
  for (int m = 16; m > 0; m >>= 1) v += c.shfl_xor(v, m);
  return v;
}

#if defined(__CUDACC__)
// ---- the device context: one intrinsic / instruction per operation ---------------------------------------------

struct DevCtx {
  __device__ __forceinline__ int tid() const { return static_cast<int>(threadIdx.x); }
  __device__ __forceinline__ int nthreads() const { return static_cast<int>(blockDim.x); }
  __device__ __forceinline__ int bx() const { return static_cast<int>(blockIdx.x); }
  __device__ __forceinline__ int by() const { return static_cast<int>(blockIdx.y); }
  __device__ __forceinline__ int bz() const { return static_cast<int>(blockIdx.z); }
  __device__ __forceinline__ int nbx() const { return static_cast<int>(gridDim.x); }
  __device__ __forceinline__ char* smem() const {
    extern __shared__ __align__(16) char qt_dyn_smem[];
    return qt_dyn_smem;
  }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
  __device__ __forceinline__ float shfl_xor(float v, int mask) const { return __shfl_xor_sync(0xffffffffu, v, mask); }
  __device__ __forceinline__ double shfl_xor(double v, int mask) const { return __shfl_xor_sync(0xffffffffu, v, mask); }
  /** d += A (16x16 fp16, row) x B (16x8 fp16, col), fp32 accumulate; the same fragment layout as mma_bf16. */
  __device__ __forceinline__ void mma_f16(float d[4], const uint32_t a[4], const uint32_t b[2]) const {
#ifndef QT_NO_BF16_MMA
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    (void)d;
    (void)a;
    (void)b;
    __trap();
#endif
  }
  /** ldmatrix.sync.aligned.m8n8.x4.shared.b16: lanes 8i .. 8i+7 give the addresses of rows 0..7 of 8x8 matrix i (16 bytes
   *  each, 16-byte aligned); lane 4g + t receives r[i] = (M_i[g][2t], M_i[g][2t+1]), low half first. */
  __device__ __forceinline__ void ldsm_x4(uint32_t r[4], const uint16_t* row) const { ldsm<false>(r, row); }
  /** The same with .trans: lane 4g + t receives r[i] = (M_i[2t][g], M_i[2t+1][g]). */
  __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const uint16_t* row) const { ldsm<true>(r, row); }
  template <bool TRANS>
  __device__ __forceinline__ void ldsm(uint32_t r[4], const uint16_t* row) const {
#ifndef QT_NO_BF16_MMA
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
    if (TRANS)
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
    else
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
#else
    (void)row;
    r[0] = r[1] = r[2] = r[3] = 0;
    __trap();
#endif
  }
  /** cp.async.cg of 16 bytes global -> shared (both 16-byte aligned); zeros instead when !valid (src-size 0, nothing
   *  read). The copy lands after cp_async_wait_all() (and is visible to other threads after a sync()). */
  __device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) const {
#ifndef QT_NO_BF16_MMA
    const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
#else
    (void)dst;
    (void)src;
    (void)valid;
    __trap();
#endif
  }
  __device__ __forceinline__ void cp_async_commit() const {
#ifndef QT_NO_BF16_MMA
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
  }
  __device__ __forceinline__ void cp_async_wait_all() const {
#ifndef QT_NO_BF16_MMA
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
  }
  /** d += A (16x16 bf16, row) x B (16x8 bf16, col), fp32 accumulate; fragments as in the PTX ISA (m16n8k16). */
  __device__ __forceinline__ void mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]) const {
#ifndef QT_NO_BF16_MMA
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    (void)d;
    (void)a;
    (void)b;
    __trap();
#endif
  }
};
#endif

}  // namespace qt::kern
