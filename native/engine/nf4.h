// NF4 quantization with optional double quantization, exactly as ENGINE_FACTS §4 (bitsandbytes / QLoRA):
//   - blocks of 64 consecutive elements of the row-major [out, in] weight, absmax per block (fp32);
//   - each element x/absmax rounded to the nearest of 16 NF4 codes; two codes per byte, even element HIGH nibble;
//   - double quantization: offset = mean(absmax); (absmax - offset) quantized in blocks of 256 to 8-bit codes of
//     bnb's signed dynamic map with one fp32 scale per block: absmax_i = map[q_i] * scale_{i/256} + offset.
// Quantization is a backend op in two steps (nf4_quantize, then nf4_double_quant around the mean of the absmax
// values): the CPU versions are below, the CUDA ones (engine/cuda/nf4.cu) compute the same codes on the GPU at
// load time. Dequantization is a backend op too (cpu/nf4_dequant.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "dtype.h"

namespace qt {

constexpr int kNf4BlockSize = 64;   // elements per absmax
constexpr int kDqBlockSize = 256;   // absmax values per double-quant scale

extern const float kNf4Codes[16];   // index 0..15, -1 .. 1 (ENGINE_FACTS §4)

/** bnb's create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted values in [-1, 1]. */
const float* dynamic_map();

/** Index of the nearest NF4 code to x (x in [-1, 1]); ties go to the lower code, as bnb's comparisons. */
uint8_t nf4_nearest(float x);
/** Index of the nearest dynamic-map value to x (x in [-1, 1]). */
uint8_t dynamic_map_nearest(float x);

/** A quantized weight on the host. */
struct Nf4Host {
  int64_t rows = 0, cols = 0;
  bool double_quant = false;
  std::vector<uint8_t> codes;         // [(rows*cols + 1) / 2], even element in the high nibble
  std::vector<float> absmax;          // [nblocks] fp32 (without double quantization)
  std::vector<uint8_t> absmax_q;      // [nblocks] dynamic-map codes (with double quantization)
  std::vector<float> absmax_scale;    // [ceil(nblocks / 256)]
  float absmax_offset = 0;

  int64_t numel() const { return rows * cols; }
  int64_t num_blocks() const { return (numel() + kNf4BlockSize - 1) / kNf4BlockSize; }
  /** Bytes of codes + statistics (what the weight costs in memory). */
  uint64_t bytes() const;
};

/** Step 1 (the CPU backend's nf4_quantize op): codes [(n+1)/2] and raw block absmax [ceil(n/64)] of n dense
 *  values (F32, F16 or BF16), threaded over blocks. */
void nf4_quantize_blocks(uint8_t* codes, float* absmax, const void* src, DType src_dtype, int64_t n);
/** The double-quantization offset: mean of the absmax values (summed in double, in index order). */
float nf4_absmax_mean(const float* absmax, int64_t nb);
/** Step 2 (the CPU backend's nf4_double_quant op): absmax_q [nb] and absmax_scale [ceil(nb/256)]. */
void nf4_double_quantize(uint8_t* absmax_q, float* absmax_scale, const float* absmax, float offset, int64_t nb);

/** Quantizes w [rows, cols] (both steps, on the host). */
Nf4Host nf4_quantize(const float* w, int64_t rows, int64_t cols, bool double_quant);

/** The block absmax values as dequantization will see them (after double quantization when on). */
std::vector<float> nf4_absmax_values(const Nf4Host& q);

}  // namespace qt
