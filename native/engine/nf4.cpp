// NF4 quantization on the host (see nf4.h). The dynamic map is rebuilt from bnb's recipe in double
// precision and rounded to float once (bnb builds it with torch.linspace in float32; the two agree to
// within float rounding of the map values, which only moves reconstruction error by ~1e-7 relative).
#include "nf4.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "cpu/threadpool.h"
#include "engine.h"

namespace qt {

const float kNf4Codes[16] = {-1.0f,
                             -0.6961928009986877f,
                             -0.5250730514526367f,
                             -0.39491748809814453f,
                             -0.28444138169288635f,
                             -0.18477343022823334f,
                             -0.09105003625154495f,
                             0.0f,
                             0.07958029955625534f,
                             0.16093020141124725f,
                             0.24611230194568634f,
                             0.33791524171829224f,
                             0.44070982933044434f,
                             0.5626170039176941f,
                             0.7229568362236023f,
                             1.0f};

namespace {

struct DynamicMap {
  float v[256];
  DynamicMap() {
    std::vector<double> data;
    // for i in 0..6: midpoints of linspace(0.1, 1, 2^i + 1) times 10^(i-6), both signs; then 0 and 1.0.
    for (int i = 0; i < 7; i++) {
      const int items = (1 << i) + 1;
      const double scale = std::pow(10.0, i - 6);
      for (int k = 0; k + 1 < items; k++) {
        double b0 = 0.1 + 0.9 * k / (items - 1);
        double b1 = 0.1 + 0.9 * (k + 1) / (items - 1);
        double mean = static_cast<double>(static_cast<float>((static_cast<float>(b0) + static_cast<float>(b1)) / 2.0f));
        data.push_back(scale * mean);
        data.push_back(-scale * mean);
      }
    }
    data.push_back(0.0);
    data.push_back(1.0);
    std::sort(data.begin(), data.end());
    for (int i = 0; i < 256; i++) v[i] = static_cast<float>(data[static_cast<size_t>(i)]);
  }
};

// NF4 decision thresholds: midpoints between consecutive codes.
struct Nf4Mid {
  float m[15];
  Nf4Mid() {
    for (int i = 0; i < 15; i++) m[i] = (kNf4Codes[i] + kNf4Codes[i + 1]) * 0.5f;
  }
};

const Nf4Mid& nf4_mid() {
  static const Nf4Mid mid;
  return mid;
}

}  // namespace

const float* dynamic_map() {
  static const DynamicMap map;  // constant table, built once
  return map.v;
}

uint8_t nf4_nearest(float x) {
  const float* m = nf4_mid().m;
  uint8_t idx = 0;
  for (int i = 0; i < 15; i++) idx += x > m[i];  // count thresholds strictly below x
  return idx;
}

uint8_t dynamic_map_nearest(float x) {
  const float* map = dynamic_map();
  const float* hi = std::lower_bound(map, map + 256, x);
  if (hi == map) return 0;
  if (hi == map + 256) return 255;
  const float* lo = hi - 1;
  return static_cast<uint8_t>((x - *lo <= *hi - x) ? lo - map : hi - map);
}

uint64_t Nf4Host::bytes() const {
  uint64_t b = codes.size();
  if (double_quant) b += absmax_q.size() + absmax_scale.size() * 4 + 4;
  else b += absmax.size() * 4;
  return b;
}

void nf4_quantize_blocks(uint8_t* codes, float* absmax, const void* src, DType src_dtype, int64_t n) {
  // codes [(n+1)/2]; absmax [nb]; src [n] in src_dtype
  const int64_t nb = (n + kNf4BlockSize - 1) / kNf4BlockSize;
  const size_t es = dtype_size(src_dtype);
  // Blocks are independent; a block of 64 (even) elements never shares a byte with another block.
  cpu::parallel_for(nb, 64, [&](int64_t b0, int64_t b1) {
    float w[kNf4BlockSize];
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = b * kNf4BlockSize, e = std::min(n, s + kNf4BlockSize);
      convert_to_f32(w, static_cast<const uint8_t*>(src) + static_cast<size_t>(s) * es, src_dtype, static_cast<size_t>(e - s));
      float amax = 0;
      for (int64_t i = 0; i < e - s; i++) amax = std::max(amax, std::fabs(w[i]));
      absmax[b] = amax;
      const float inv = amax > 0 ? 1.0f / amax : 0.0f;  // bnb multiplies by the reciprocal
      for (int64_t i = s; i < e; i++) {
        const uint8_t c = nf4_nearest(w[i - s] * inv);
        uint8_t& byte = codes[i / 2];
        if (i % 2 == 0) byte = static_cast<uint8_t>(c << 4);  // even element: high nibble (writes the byte first)
        else byte = static_cast<uint8_t>(byte | c);
      }
    }
  });
}

float nf4_absmax_mean(const float* absmax, int64_t nb) {
  double sum = 0;
  for (int64_t b = 0; b < nb; b++) sum += absmax[b];
  return static_cast<float>(sum / static_cast<double>(nb));
}

void nf4_double_quantize(uint8_t* absmax_q, float* absmax_scale, const float* absmax, float offset, int64_t nb) {
  // absmax_q [nb]; absmax_scale [ceil(nb/256)]; absmax [nb]
  const int64_t ns = (nb + kDqBlockSize - 1) / kDqBlockSize;
  for (int64_t s = 0; s < ns; s++) {
    const int64_t b0 = s * kDqBlockSize, b1 = std::min(nb, b0 + kDqBlockSize);
    float amax = 0;
    for (int64_t b = b0; b < b1; b++) amax = std::max(amax, std::fabs(absmax[b] - offset));
    absmax_scale[s] = amax;
    const float inv = amax > 0 ? 1.0f / amax : 0.0f;
    for (int64_t b = b0; b < b1; b++) absmax_q[b] = dynamic_map_nearest((absmax[b] - offset) * inv);
  }
}

Nf4Host nf4_quantize(const float* w, int64_t rows, int64_t cols, bool double_quant) {
  Nf4Host q;
  q.rows = rows;
  q.cols = cols;
  q.double_quant = double_quant;
  const int64_t n = rows * cols;
  const int64_t nb = q.num_blocks();
  q.codes.assign(static_cast<size_t>((n + 1) / 2), 0);
  std::vector<float> absmax(static_cast<size_t>(nb));
  nf4_quantize_blocks(q.codes.data(), absmax.data(), w, DType::F32, n);
  if (!double_quant) {
    q.absmax = std::move(absmax);
    return q;
  }
  q.absmax_offset = nf4_absmax_mean(absmax.data(), nb);
  q.absmax_q.assign(static_cast<size_t>(nb), 0);
  q.absmax_scale.assign(static_cast<size_t>((nb + kDqBlockSize - 1) / kDqBlockSize), 0.0f);
  nf4_double_quantize(q.absmax_q.data(), q.absmax_scale.data(), absmax.data(), q.absmax_offset, nb);
  return q;
}

std::vector<float> nf4_absmax_values(const Nf4Host& q) {
  if (!q.double_quant) return q.absmax;
  const float* map = dynamic_map();
  std::vector<float> out(q.absmax_q.size());
  for (size_t b = 0; b < out.size(); b++) out[b] = map[q.absmax_q[b]] * q.absmax_scale[b / kDqBlockSize] + q.absmax_offset;
  return out;
}

}  // namespace qt
