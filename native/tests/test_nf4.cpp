// NF4 and double quantization against ENGINE_FACTS §4.
#include <algorithm>
#include <set>

#include "cpu/ops.h"
#include "gradcheck.h"
#include "nf4.h"

using namespace qtest;

TEST(nf4_codebook_values) {
  const double expect[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                             -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                             0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                             0.7229568362236023, 1.0};
  for (int i = 0; i < 16; i++) CHECK_EQ(qt::kNf4Codes[i], static_cast<float>(expect[i]));
  for (int i = 0; i < 16; i++) CHECK_EQ(static_cast<int>(qt::nf4_nearest(qt::kNf4Codes[i])), i);  // codes map to themselves
  CHECK_EQ(static_cast<int>(qt::nf4_nearest(0.03f)), 7);   // below the midpoint 0.0398 -> 0.0
  CHECK_EQ(static_cast<int>(qt::nf4_nearest(0.05f)), 8);   // above -> 0.0796
  CHECK_EQ(static_cast<int>(qt::nf4_nearest(-0.9f)), 0);
  CHECK_EQ(static_cast<int>(qt::nf4_nearest(0.64f)), 13);  // below the midpoint 0.6428 of 0.5626 and 0.7230
  CHECK_EQ(static_cast<int>(qt::nf4_nearest(0.65f)), 14);
}

TEST(nf4_nibble_order_even_element_high) {
  // block of 64: x[0] = absmax (code 15), x[1] = -absmax (code 0), x[2] = 0 (code 7), x[3] = 0.44 * absmax (12)
  std::vector<float> w(64, 0.0f);
  w[0] = 2.0f;
  w[1] = -2.0f;
  w[3] = 0.4407f * 2.0f;
  qt::Nf4Host q = qt::nf4_quantize(w.data(), 1, 64, false);
  CHECK_EQ(q.codes.size(), 32u);
  CHECK_EQ(static_cast<int>(q.codes[0]), (15 << 4) | 0);
  CHECK_EQ(static_cast<int>(q.codes[1]), (7 << 4) | 12);
  CHECK_EQ(q.absmax[0], 2.0f);
  // dequantization reads the same order
  qt::Weight v;
  v.dtype = qt::DType::NF4;
  v.rows = 1;
  v.cols = 64;
  v.data = q.codes.data();
  v.absmax = q.absmax.data();
  std::vector<float> out(64);
  qt::cpu::dequantize(out.data(), v);
  CHECK_EQ(out[0], 2.0f);
  CHECK_EQ(out[1], -2.0f);
  CHECK_EQ(out[2], 0.0f);
  CHECK_NEAR(out[3], 0.44070982933044434 * 2.0, 1e-6);
}

static qt::Weight view(const qt::Nf4Host& q) {
  qt::Weight v;
  v.dtype = qt::DType::NF4;
  v.rows = q.rows;
  v.cols = q.cols;
  v.data = q.codes.data();
  v.double_quant = q.double_quant;
  v.absmax = q.absmax.data();
  v.absmax_q = q.absmax_q.data();
  v.absmax_scale = q.absmax_scale.data();
  v.absmax_offset = q.absmax_offset;
  return v;
}

TEST(nf4_round_trip_error_bound_per_block) {
  // |x - deq| <= absmax * (largest gap between consecutive codes) / 2, block by block (no double quant)
  double max_gap = 0;
  for (int i = 0; i < 15; i++) max_gap = std::max(max_gap, static_cast<double>(qt::kNf4Codes[i + 1] - qt::kNf4Codes[i]));
  const int rows = 48, cols = 200;  // 9600 elements: 150 blocks, rows not multiples of 64
  auto w = rand_vec(static_cast<size_t>(rows * cols), 7, -0.3f, 0.3f);
  for (size_t i = 0; i < w.size(); i += 97) w[i] *= 8.0f;  // outliers
  qt::Nf4Host q = qt::nf4_quantize(w.data(), rows, cols, false);
  CHECK_EQ(q.num_blocks(), 150);
  std::vector<float> d(w.size());
  qt::cpu::dequantize(d.data(), view(q));
  for (int64_t b = 0; b < q.num_blocks(); b++) {
    float amax = 0;
    for (int64_t i = b * 64; i < (b + 1) * 64; i++) amax = std::max(amax, std::fabs(w[static_cast<size_t>(i)]));
    CHECK_EQ(q.absmax[static_cast<size_t>(b)], amax);
    for (int64_t i = b * 64; i < (b + 1) * 64; i++)
      CHECK_MSG(std::fabs(w[static_cast<size_t>(i)] - d[static_cast<size_t>(i)]) <= amax * max_gap / 2 * (1 + 1e-6),
                "element " << i);
  }
  // and every element is the nearest code: no other code is closer
  for (size_t i = 0; i < w.size(); i++) {
    const float amax = q.absmax[i / 64];
    const float err = std::fabs(w[i] - d[i]);
    for (int k = 0; k < 16; k++) CHECK(err <= std::fabs(w[i] - qt::kNf4Codes[k] * amax) + 1e-6f);
  }
}

TEST(nf4_dynamic_map_recipe) {
  const float* map = qt::dynamic_map();
  std::set<float> uniq(map, map + 256);
  CHECK_EQ(uniq.size(), 256u);
  CHECK(std::is_sorted(map, map + 256));
  CHECK_EQ(map[255], 1.0f);
  CHECK(uniq.count(0.0f) == 1);
  CHECK_NEAR(map[0], -0.99296875, 1e-7);  // -(midpoint of the last two of linspace(0.1, 1, 65))
  // smallest positive: 10^-6 * mean(0.1, 1) = 0.55e-6
  float smallest = 1;
  for (int i = 0; i < 256; i++)
    if (map[i] > 0) smallest = std::min(smallest, map[i]);
  CHECK_NEAR(smallest, 0.55e-6, 1e-12);
  int positives = 0;
  for (int i = 0; i < 256; i++) positives += map[i] > 0;
  CHECK_EQ(positives, 128);  // 127 midpoints + 1.0
}

TEST(nf4_double_quant_round_trip) {
  const int rows = 256, cols = 256;  // 1024 blocks -> 4 double-quant blocks
  auto w = rand_vec(static_cast<size_t>(rows * cols), 11, -1.0f, 1.0f);
  for (size_t b = 0; b < w.size() / 64; b++)  // vary block scales over two orders of magnitude
    for (size_t i = 0; i < 64; i++) w[b * 64 + i] *= 0.02f + 2.0f * static_cast<float>(b % 37) / 37.0f;
  qt::Nf4Host plain = qt::nf4_quantize(w.data(), rows, cols, false);
  qt::Nf4Host dq = qt::nf4_quantize(w.data(), rows, cols, true);
  CHECK_EQ(dq.absmax_q.size(), 1024u);
  CHECK_EQ(dq.absmax_scale.size(), 4u);
  double mean = 0;
  for (float a : plain.absmax) mean += a;
  mean /= static_cast<double>(plain.absmax.size());
  CHECK_NEAR(dq.absmax_offset, mean, 1e-6);
  CHECK(dq.codes == plain.codes);  // codes are quantized against the exact absmax
  // absmax reconstruction: |a - a'| <= scale * (half the largest gap of the dynamic map around the value)
  const float* map = qt::dynamic_map();
  auto rec = qt::nf4_absmax_values(dq);
  for (size_t b = 0; b < rec.size(); b++) {
    const float scale = dq.absmax_scale[b / 256];
    const float norm = (plain.absmax[b] - dq.absmax_offset) / scale;
    const float* hi = std::lower_bound(map, map + 256, norm);
    float gap = 0;
    if (hi != map && hi != map + 256) gap = *hi - *(hi - 1);
    CHECK_MSG(std::fabs(rec[b] - plain.absmax[b]) <= scale * (gap / 2 + 1e-6f), "block " << b);
    CHECK(std::fabs(rec[b] - plain.absmax[b]) <= 0.0071f * scale);  // the map's widest gap is 0.0140625
  }
  // dequantized weights with double quantization stay within the NF4 bound of the reconstructed absmax
  std::vector<float> d(w.size());
  qt::cpu::dequantize(d.data(), view(dq));
  for (size_t i = 0; i < w.size(); i++) {
    const float code = qt::kNf4Codes[(i % 2 == 0) ? dq.codes[i / 2] >> 4 : dq.codes[i / 2] & 15];
    CHECK_EQ(d[i], code * rec[i / 64]);
  }
}

TEST(nf4_bits_per_weight) {
  const int rows = 128, cols = 8192;  // 1M weights: 16384 blocks, 64 double-quant blocks
  std::vector<float> w = rand_vec(static_cast<size_t>(rows * cols), 3);
  qt::Nf4Host dq = qt::nf4_quantize(w.data(), rows, cols, true);
  qt::Nf4Host plain = qt::nf4_quantize(w.data(), rows, cols, false);
  const double n = static_cast<double>(rows) * cols;
  const double bits_dq = static_cast<double>(dq.bytes() - 4) * 8 / n;  // minus the one fp32 offset per tensor
  const double bits_plain = static_cast<double>(plain.bytes()) * 8 / n;
  CHECK_NEAR(bits_dq, 4.127, 0.0005);  // 4 + 8/64 + 32/(64*256)
  CHECK_NEAR(bits_plain, 4.5, 1e-9);   // 4 + 32/64
}
