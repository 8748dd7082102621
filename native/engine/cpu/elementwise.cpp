// Elementwise helpers and the reduction used for the global gradient norm (torch.nn.utils.clip_grad_norm_).
#include "dtype.h"
#include "ops.h"

namespace qt::cpu {

void add(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void to_bf16(uint16_t* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

void from_bf16(float* out, const uint16_t* in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = bf16_to_f32(in[i]);
}

void scale(float* x, float s, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

double sum_squares(const float* x, size_t n) {
  double s = 0;  // serial: fixed order, deterministic
  for (size_t i = 0; i < n; i++) s += static_cast<double>(x[i]) * x[i];
  return s;
}

}  // namespace qt::cpu
