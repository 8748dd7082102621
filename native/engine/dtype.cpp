// Scalar dtype helpers: names, sizes and the IEEE half <-> single conversions (subnormals, inf and NaN kept).
#include "dtype.h"

#include <cmath>

namespace qt {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::NF4: return "NF4";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::NF4: return 0;
  }
  return 0;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;  // +-0
    } else {        // subnormal: normalise
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;  // inf / NaN
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u; // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                       // below the smallest normal half: subnormal or zero
    // value = abs as float; half subnormal unit = 2^-24
    float a;
    std::memcpy(&a, &abs, 4);
    float scaled = a * 16777216.0f;  // a / 2^-24, exact (power of two)
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));  // round to nearest even (default mode)
    return sign | static_cast<uint16_t>(m);
  }
  // normal: rebias exponent, round mantissa to 10 bits (nearest even)
  uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);
  r -= (127u - 15u) << 23;
  return sign | static_cast<uint16_t>(r >> 13);
}

void convert_to_f32(float* out, const void* src, DType t, size_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(out, src, n * 4);
      return;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) out[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) out[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::NF4:
      return;  // not a scalar type; callers dequantize through nf4.h
  }
}

}  // namespace qt
