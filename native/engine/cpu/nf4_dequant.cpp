// Dequantization to fp32 of any frozen weight: NF4 (with or without double-quantized absmax, ENGINE_FACTS
// §4) or dense F16/BF16/F32. w = code[idx] * absmax_b, absmax_b = map[q_b] * scale_{b/256} + offset.
#include <algorithm>

#include "nf4.h"
#include "ops.h"
#include "threadpool.h"

namespace qt::cpu {

static inline float block_absmax(const Weight& w, int64_t b) {
  if (!w.double_quant) return w.absmax[b];
  return dynamic_map()[w.absmax_q[b]] * w.absmax_scale[b / kDqBlockSize] + w.absmax_offset;
}

void dequantize_range(float* out, const Weight& w, int64_t start, int64_t count) {
  if (w.dtype != DType::NF4) {
    const size_t es = dtype_size(w.dtype);
    convert_to_f32(out, static_cast<const uint8_t*>(w.data) + static_cast<size_t>(start) * es, w.dtype,
                   static_cast<size_t>(count));
    return;
  }
  const uint8_t* codes = static_cast<const uint8_t*>(w.data);
  int64_t i = start;
  const int64_t end = start + count;
  while (i < end) {
    const int64_t b = i / kNf4BlockSize;
    const int64_t bend = std::min(end, (b + 1) * kNf4BlockSize);
    const float am = block_absmax(w, b);
    for (; i < bend; i++) {
      const uint8_t byte = codes[i / 2];
      const uint8_t idx = (i % 2 == 0) ? (byte >> 4) : (byte & 0x0f);
      out[i - start] = kNf4Codes[idx] * am;
    }
  }
}

void dequantize(float* out, const Weight& w) {
  // out [rows * cols]; threads over chunks of whole 64-blocks
  const int64_t n = w.rows * w.cols;
  const int64_t nb = (n + kNf4BlockSize - 1) / kNf4BlockSize;
  parallel_for(nb, 256, [&](int64_t b0, int64_t b1) {
    const int64_t s = b0 * kNf4BlockSize, e = std::min(n, b1 * kNf4BlockSize);
    dequantize_range(out + s, w, s, e - s);
  });
}

}  // namespace qt::cpu
