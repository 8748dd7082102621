// Element types of stored tensors and the scalar conversions between them (bf16/f16 <-> f32).
// bf16 -> f32 is exact (a shift); f32 -> bf16/f16 round to nearest even, as torch does.
// NF4 is not a scalar type: it is a layout (4-bit codes + block absmax, see nf4.h) used for frozen weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace qt {

enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, NF4 = 3 };

const char* dtype_name(DType t);         // "F32" | "F16" | "BF16" | "NF4"
size_t dtype_size(DType t);              // bytes per element (0 for NF4: 4 bits, see nf4.h)

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

/** out[i] = float(src[i]) for n elements of a scalar dtype (F32, F16, BF16). */
void convert_to_f32(float* out, const void* src, DType t, size_t n);

}  // namespace qt
