// Every CPU op against finite differences (gradcheck.h), plus forward properties the backward checks
// cannot see (masking, caching, dtype handling). These are the semantics the CUDA backend must match.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "cpu/ops.h"
#include "fixtures.h"
#include "gradcheck.h"
#include "nf4.h"
#include "rng.h"

using namespace qtest;
namespace cpu = qt::cpu;

static qt::Weight f32_weight(const std::vector<float>& w, int rows, int cols) {
  qt::Weight v;
  v.dtype = qt::DType::F32;
  v.rows = rows;
  v.cols = cols;
  v.data = w.data();
  return v;
}

TEST(grad_embedding) {
  const int V = 7, C = 5, N = 6;
  auto wte = rand_vec(V * C, 1);
  std::vector<int32_t> ids = {3, 1, 3, 6, 0, 3};
  auto g = rand_vec(N * C, 2);
  std::vector<float> out(N * C), dwte(V * C, 0.0f);
  qt::Weight w = f32_weight(wte, V, C);
  cpu::embedding_backward(dwte.data(), g.data(), ids.data(), N, C);
  auto loss = [&] {
    cpu::embedding_forward(out.data(), ids.data(), w, N, C);
    return weighted_sum(out.data(), g);
  };
  grad_check("embedding dwte", wte.data(), dwte, loss, 1e-2f, 1e-3, 1e-5);  // linear: exact up to rounding
  // a BF16 table gives the same rows as its fp32 conversion
  std::vector<uint16_t> bf(wte.size());
  for (size_t i = 0; i < wte.size(); i++) bf[i] = qt::f32_to_bf16(wte[i]);
  qt::Weight wb;
  wb.dtype = qt::DType::BF16;
  wb.rows = V;
  wb.cols = C;
  wb.data = bf.data();
  cpu::embedding_forward(out.data(), ids.data(), wb, N, C);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) CHECK_EQ(out[n * C + c], qt::bf16_to_f32(bf[ids[n] * C + c]));
}

TEST(grad_rmsnorm) {
  const int N = 4, C = 16;
  auto x = rand_vec(N * C, 3, -2, 2);
  auto w = rand_vec(C, 4, 0.5f, 1.5f);
  auto g = rand_vec(N * C, 5);
  std::vector<float> out(N * C), rstd(N), dx(N * C, 0.0f), dw(C, 0.0f);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
  for (int c = 0; c < C; c++) {  // forward against the definition
    double ss = 0;
    for (int k = 0; k < C; k++) ss += x[k] * x[k];
    CHECK_NEAR(out[c], x[c] / std::sqrt(ss / C + 1e-5) * w[c], 1e-5);
  }
  cpu::rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
  auto loss = [&] {
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    return weighted_sum(out.data(), g);
  };
  grad_check("rmsnorm dinp", x.data(), dx, loss, 1e-3f, 1e-2, 1e-4);
  grad_check("rmsnorm dweight", w.data(), dw, loss, 1e-3f, 1e-2, 1e-4);
}

static bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(add_rmsnorm_equals_add_then_rmsnorm_bit_for_bit) {
  // The fused residual add + norm (model.cpp's every residual add) against the two ops it stands for, with x_out
  // separate, in place on a (x_mid = x_mid + x) and in place on b.
  struct Shape {
    int N, C;
  };
  for (Shape sh : {Shape{1, 4096}, Shape{37, 96}, Shape{3, 33}}) {
    const size_t n = static_cast<size_t>(sh.N) * sh.C;
    const auto a0 = rand_vec(n, 60, -2, 2), b0 = rand_vec(n, 61, -2, 2), w = rand_vec(static_cast<size_t>(sh.C), 62, 0.5f, 1.5f);
    std::vector<float> sum(n), out(n), rstd(static_cast<size_t>(sh.N));
    cpu::add(sum.data(), a0.data(), b0.data(), n);
    cpu::rmsnorm_forward(out.data(), rstd.data(), sum.data(), w.data(), sh.N, sh.C, 1e-5f);
    for (int alias = 0; alias < 3; alias++) {  // x_out: separate, == a, == b
      std::vector<float> a = a0, b = b0, sep(n, -7.0f), f_out(n, -7.0f), f_rstd(static_cast<size_t>(sh.N), -7.0f);
      float* x_out = alias == 0 ? sep.data() : alias == 1 ? a.data() : b.data();
      cpu::add_rmsnorm_forward(x_out, f_out.data(), f_rstd.data(), a.data(), b.data(), w.data(), sh.N, sh.C, 1e-5f);
      const std::vector<float> got(x_out, x_out + n);
      CHECK_MSG(same_bits(got, sum) && same_bits(f_out, out) && same_bits(f_rstd, rstd),
                "N=" << sh.N << " C=" << sh.C << " alias " << alias);
      if (alias != 1) CHECK(same_bits(a, a0));  // the addend that is not the output is left alone
      if (alias != 2) CHECK(same_bits(b, b0));
    }
    // and through the backend table (what model.cpp calls)
    std::vector<float> x = a0, t_out(n), t_rstd(static_cast<size_t>(sh.N));
    qt::cpu_backend().add_rmsnorm_forward(x.data(), t_out.data(), t_rstd.data(), x.data(), b0.data(), w.data(), sh.N, sh.C, 1e-5f);
    CHECK(same_bits(x, sum) && same_bits(t_out, out) && same_bits(t_rstd, rstd));
  }
}

static std::vector<float> test_inv_freq(int HS, bool llama3) {
  qt::ModelConfig c;
  c.head_dim = HS;
  c.rope_theta = 10000.0f;
  if (llama3) {
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8.0f;
    c.rope_scaling.low_freq_factor = 1.0f;
    c.rope_scaling.high_freq_factor = 4.0f;
    c.rope_scaling.original_max_position = 64;
  }
  return qt::rope_inv_freq(c);
}

TEST(grad_rope) {
  const int B = 2, T = 3, H = 2, HS = 8;
  auto inv = test_inv_freq(HS, true);
  auto x = rand_vec(B * T * H * HS, 6);
  auto g = rand_vec(x.size(), 7);
  std::vector<float> out(x.size()), dx(x.size());
  cpu::rope_backward(dx.data(), g.data(), inv.data(), B, T, H, HS, 5);
  auto loss = [&] {
    cpu::rope_forward(out.data(), x.data(), inv.data(), B, T, H, HS, 5);
    return weighted_sum(out.data(), g);
  };
  grad_check("rope dinp", x.data(), dx, loss, 1e-2f, 1e-3, 1e-5);
  // forward against the explicit rotation of pair (i, i + HS/2) at position pos0 + t
  cpu::rope_forward(out.data(), x.data(), inv.data(), B, T, H, HS, 5);
  const int b = 1, t = 2, h = 1, i = 1;
  const size_t o = ((static_cast<size_t>(b) * T + t) * H + h) * HS;
  const double ang = (5 + t) * static_cast<double>(inv[i]);
  CHECK_NEAR(out[o + i], x[o + i] * std::cos(ang) - x[o + i + HS / 2] * std::sin(ang), 1e-5);
  CHECK_NEAR(out[o + i + HS / 2], x[o + i + HS / 2] * std::cos(ang) + x[o + i] * std::sin(ang), 1e-5);
}

TEST(rope_forward_qk_equals_two_rope_forward_bit_for_bit) {
  // q and k rotated in place by one op, as the attention block does (k may be a KV-cache slot): the same bits as
  // rope_forward on each, for a prefill-like and a decode-like shape (GQA: fewer key heads).
  struct Shape {
    int B, T, NH, NKV, HS, pos0;
  };
  for (Shape sh : {Shape{2, 5, 4, 2, 16, 0}, Shape{1, 1, 8, 2, 64, 777}}) {
    const auto inv = test_inv_freq(sh.HS, true);
    const size_t nq = static_cast<size_t>(sh.B) * sh.T * sh.NH * sh.HS, nk = static_cast<size_t>(sh.B) * sh.T * sh.NKV * sh.HS;
    auto q = rand_vec(nq, 63, -2, 2), k = rand_vec(nk, 64, -2, 2);
    std::vector<float> q_ref = q, k_ref = k;
    cpu::rope_forward(q_ref.data(), q_ref.data(), inv.data(), sh.B, sh.T, sh.NH, sh.HS, sh.pos0);
    cpu::rope_forward(k_ref.data(), k_ref.data(), inv.data(), sh.B, sh.T, sh.NKV, sh.HS, sh.pos0);
    CHECK(!same_bits(q, q_ref) && !same_bits(k, k_ref));  // the rotation did something
    std::vector<float> q1 = q, k1 = k;
    cpu::rope_forward_qk(q1.data(), k1.data(), inv.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS, sh.pos0);
    CHECK_MSG(same_bits(q1, q_ref) && same_bits(k1, k_ref), "B=" << sh.B << " T=" << sh.T << " pos0=" << sh.pos0);
    qt::cpu_backend().rope_forward_qk(q.data(), k.data(), inv.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS, sh.pos0);
    CHECK(same_bits(q, q_ref) && same_bits(k, k_ref));
  }
}

TEST(rope_llama3_inverse_frequencies) {
  // transformers' _compute_llama3_parameters with factor 8, low 1, high 4, original context 64, HS 32
  const int HS = 32;
  auto plain = test_inv_freq(HS, false);
  auto scaled = test_inv_freq(HS, true);
  const double low_wavelen = 64.0 / 1.0, high_wavelen = 64.0 / 4.0;
  int n_low = 0, n_high = 0, n_mid = 0;
  for (int i = 0; i < HS / 2; i++) {
    const double f = std::pow(10000.0, -2.0 * i / HS);
    CHECK_NEAR(plain[i], f, f * 1e-6);
    const double wl = 2 * 3.14159265358979323846 / f;
    double expect;
    if (wl < high_wavelen) {
      expect = f;
      n_high++;
    } else if (wl > low_wavelen) {
      expect = f / 8;
      n_low++;
    } else {
      const double smooth = (64.0 / wl - 1.0) / (4.0 - 1.0);
      expect = (1 - smooth) * f / 8 + smooth * f;
      n_mid++;
    }
    CHECK_NEAR(scaled[i], expect, expect * 1e-5);
  }
  CHECK(n_low > 0 && n_high > 0 && n_mid > 0);  // all three regimes exercised
}

TEST(grad_attention_gqa_padding) {
  const int B = 2, T = 5, NH = 4, NKV = 2, HS = 4;
  std::vector<int32_t> lengths = {5, 3};
  auto q = rand_vec(B * T * NH * HS, 8, -1.5f, 1.5f);
  auto k = rand_vec(B * T * NKV * HS, 9, -1.5f, 1.5f);
  auto v = rand_vec(B * T * NKV * HS, 10);
  auto g = rand_vec(q.size(), 11);
  std::vector<float> out(q.size()), lse(B * NH * T), dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  cpu::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), lengths.data(), B, T, T, NH, NKV, HS);
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), out.data(),
                          lse.data(), lengths.data(), B, T, T, NH, NKV, HS);
  auto loss = [&] {
    cpu::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), lengths.data(), B, T, T, NH, NKV, HS);
    return weighted_sum(out.data(), g);
  };
  grad_check("attention dq", q.data(), dq, loss, 1e-2f, 1e-2, 2e-4);
  grad_check("attention dk", k.data(), dk, loss, 1e-2f, 1e-2, 2e-4);
  grad_check("attention dv", v.data(), dv, loss, 1e-2f, 1e-2, 2e-4);
  // padded keys (row 1, positions >= 3) get no gradient and do not change any output
  for (int t = 3; t < T; t++)
    for (int i = 0; i < NKV * HS; i++) {
      CHECK_EQ(dk[((1 * T + t) * NKV) * HS + i], 0.0f);
      CHECK_EQ(dv[((1 * T + t) * NKV) * HS + i], 0.0f);
    }
  std::vector<float> before = out;
  for (int t = 3; t < T; t++)
    for (int i = 0; i < NKV * HS; i++) k[((1 * T + t) * NKV) * HS + i] += 5.0f;
  loss();
  CHECK(before == out);
  // causality: query 0 of row 0 equals v of key 0 for its kv head
  for (int h = 0; h < NH; h++)
    for (int d = 0; d < HS; d++) CHECK_NEAR(out[h * HS + d], v[(h / 2) * HS + d], 1e-6);
}

TEST(attention_cached_queries_match_full) {
  // the last Tq queries against all Tk keys (generation with a KV cache) equal the full causal pass
  const int T = 6, NH = 4, NKV = 1, HS = 8, Tq = 2;
  auto q = rand_vec(T * NH * HS, 12);
  auto k = rand_vec(T * NKV * HS, 13);
  auto v = rand_vec(T * NKV * HS, 14);
  std::vector<float> full(q.size()), lse(NH * T), part(Tq * NH * HS), lse2(NH * Tq);
  cpu::attention_forward(full.data(), lse.data(), q.data(), k.data(), v.data(), nullptr, 1, T, T, NH, NKV, HS);
  cpu::attention_forward(part.data(), lse2.data(), q.data() + (T - Tq) * NH * HS, k.data(), v.data(), nullptr, 1, Tq, T,
                         NH, NKV, HS);
  for (int i = 0; i < Tq * NH * HS; i++) CHECK_EQ(part[i], full[(T - Tq) * NH * HS + i]);
}

TEST(grad_swiglu) {
  const size_t n = 24;
  auto gate = rand_vec(n, 15, -3, 3);
  auto up = rand_vec(n, 16, -2, 2);
  auto g = rand_vec(n, 17);
  std::vector<float> out(n), dgate(n, 0.0f), dup(n, 0.0f);
  cpu::swiglu_backward(dgate.data(), dup.data(), g.data(), gate.data(), up.data(), n);
  auto loss = [&] {
    cpu::swiglu_forward(out.data(), gate.data(), up.data(), n);
    return weighted_sum(out.data(), g);
  };
  grad_check("swiglu dgate", gate.data(), dgate, loss, 1e-3f, 1e-2, 1e-4);
  grad_check("swiglu dup", up.data(), dup, loss, 1e-3f, 1e-2, 1e-4);
  CHECK_NEAR(out[0], gate[0] / (1 + std::exp(-gate[0])) * up[0], 1e-6);
}

TEST(grad_matmul) {
  const int N = 3, C = 5, OC = 4;
  auto x = rand_vec(N * C, 18);
  auto w = rand_vec(OC * C, 19);
  auto bias = rand_vec(OC, 20);
  auto g = rand_vec(N * OC, 21);
  std::vector<float> out(N * OC), dx(N * C, 0.0f), dw(OC * C, 0.0f), db(OC, 0.0f);
  qt::Weight wv = f32_weight(w, OC, C);
  cpu::matmul_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), wv, N, C, OC);
  auto loss = [&] {
    cpu::matmul_forward(out.data(), x.data(), wv, bias.data(), N, C, OC);
    return weighted_sum(out.data(), g);
  };
  grad_check("matmul dinp", x.data(), dx, loss, 1e-2f, 1e-3, 1e-5);
  grad_check("matmul dweight", w.data(), dw, loss, 1e-2f, 1e-3, 1e-5);
  grad_check("matmul dbias", bias.data(), db, loss, 1e-2f, 1e-3, 1e-5);
}

TEST(matmul_forward_many_equals_one_call_per_weight) {
  const int N = 2, C = 7;
  auto x = rand_vec(N * C, 25);
  auto w0 = rand_vec(4 * C, 26), w1 = rand_vec(3 * C, 27), b1 = rand_vec(3, 28);
  const qt::Weight q0 = f32_weight(w0, 4, C), q1 = f32_weight(w1, 3, C);
  std::vector<float> m0(N * 4), m1(N * 3), s0(N * 4), s1(N * 3);
  float* outs[2] = {m0.data(), m1.data()};
  const qt::Weight* ws[2] = {&q0, &q1};
  const float* bs[2] = {nullptr, b1.data()};
  cpu::matmul_forward_many(outs, x.data(), ws, bs, 2, N, C);
  cpu::matmul_forward(s0.data(), x.data(), q0, nullptr, N, C, 4);
  cpu::matmul_forward(s1.data(), x.data(), q1, b1.data(), N, C, 3);
  CHECK(m0 == s0 && m1 == s1);
}

TEST(matmul_t_bf16_activations_are_the_fp32_ops_on_widened_values_rounded_once) {
  // backend.h matmul_forward_t / matmul_backward_t: a BF16 input is widened exactly, a BF16 output is the fp32 result
  // rounded to nearest even; accumulate = false overwrites whatever dinp held
  const int N = 3, C = 9, OC = 5;
  auto x = rand_vec(N * C, 301), w = rand_vec(OC * C, 302), g = rand_vec(N * OC, 303);
  const qt::Weight wv = f32_weight(w, OC, C);
  const auto xh = bf16_of(x), gh = bf16_of(g);
  std::vector<float> ref(N * OC), out32(N * OC);
  cpu::matmul_forward(ref.data(), x.data(), wv, nullptr, N, C, OC);
  cpu::matmul_forward_t(out32.data(), qt::DType::F32, x.data(), qt::DType::F32, wv, N, C, OC);
  CHECK(out32 == ref);
  std::vector<uint16_t> out16(N * OC);
  cpu::matmul_forward_t(out16.data(), qt::DType::BF16, x.data(), qt::DType::F32, wv, N, C, OC);
  CHECK(out16 == bf16_of(ref));
  cpu::matmul_forward(ref.data(), f32_of(xh).data(), wv, nullptr, N, C, OC);
  cpu::matmul_forward_t(out32.data(), qt::DType::F32, xh.data(), qt::DType::BF16, wv, N, C, OC);
  CHECK(out32 == ref);

  std::vector<float> dref(N * C, 0.0f), dx(N * C, 123.0f);
  cpu::matmul_backward(dref.data(), nullptr, nullptr, f32_of(gh).data(), nullptr, wv, N, C, OC);
  cpu::matmul_backward_t(dx.data(), qt::DType::F32, false, gh.data(), qt::DType::BF16, wv, N, C, OC);  // overwrites
  CHECK(dx == dref);
  std::vector<float> dacc = rand_vec(N * C, 304), dexp = dacc;
  cpu::matmul_backward(dexp.data(), nullptr, nullptr, g.data(), nullptr, wv, N, C, OC);
  cpu::matmul_backward_t(dacc.data(), qt::DType::F32, true, g.data(), qt::DType::F32, wv, N, C, OC);  // adds
  CHECK(dacc == dexp);
  std::vector<uint16_t> dx16(N * C, 0x7fc0);
  std::fill(dref.begin(), dref.end(), 0.0f);
  cpu::matmul_backward(dref.data(), nullptr, nullptr, g.data(), nullptr, wv, N, C, OC);
  cpu::matmul_backward_t(dx16.data(), qt::DType::BF16, false, g.data(), qt::DType::F32, wv, N, C, OC);
  CHECK(dx16 == bf16_of(dref));
  bool threw = false;
  try {
    cpu::matmul_backward_t(dx16.data(), qt::DType::BF16, true, g.data(), qt::DType::F32, wv, N, C, OC);
  } catch (const qt::Error&) {
    threw = true;
  }
  CHECK(threw);  // a bf16 dinp cannot accumulate
}

TEST(swiglu_bf16_is_the_fp32_swiglu_on_widened_values_rounded_once) {
  const size_t n = 37;
  const auto gh = bf16_of(rand_vec(n, 311, -6, 6)), uh = bf16_of(rand_vec(n, 312, -2, 2)), dh = bf16_of(rand_vec(n, 313));
  const auto gf = f32_of(gh), uf = f32_of(uh), df = f32_of(dh);
  std::vector<float> out(n), dg(n, 0.0f), du(n, 0.0f);
  cpu::swiglu_forward(out.data(), gf.data(), uf.data(), n);
  cpu::swiglu_backward(dg.data(), du.data(), df.data(), gf.data(), uf.data(), n);
  std::vector<uint16_t> out16(n), dg16(n, 0x7fc0), du16(n, 0x7fc0);  // NaN: the backward overwrites
  cpu::swiglu_forward_bf16(out16.data(), gh.data(), uh.data(), n);
  cpu::swiglu_backward_bf16(dg16.data(), du16.data(), dh.data(), gh.data(), uh.data(), n);
  CHECK(out16 == bf16_of(out));
  CHECK(dg16 == bf16_of(dg));
  CHECK(du16 == bf16_of(du));
}

TEST(matmul_nf4_and_bf16_weights_use_their_dequantized_values) {
  const int N = 5, C = 128, OC = 6;
  auto x = rand_vec(N * C, 22);
  auto w = rand_vec(OC * C, 23);
  qt::Nf4Host q = qt::nf4_quantize(w.data(), OC, C, true);
  qt::Weight wq;
  wq.dtype = qt::DType::NF4;
  wq.rows = OC;
  wq.cols = C;
  wq.data = q.codes.data();
  wq.double_quant = true;
  wq.absmax_q = q.absmax_q.data();
  wq.absmax_scale = q.absmax_scale.data();
  wq.absmax_offset = q.absmax_offset;
  std::vector<float> deq(w.size());
  cpu::dequantize(deq.data(), wq);
  std::vector<float> a(N * OC), b(N * OC);
  cpu::matmul_forward(a.data(), x.data(), wq, nullptr, N, C, OC);
  cpu::matmul_forward(b.data(), x.data(), f32_weight(deq, OC, C), nullptr, N, C, OC);
  CHECK(a == b);
  // input gradient through the frozen NF4 weight = through its dequantized copy
  auto g = rand_vec(N * OC, 24);
  std::vector<float> da(N * C, 0.0f), db(N * C, 0.0f);
  cpu::matmul_backward(da.data(), nullptr, nullptr, g.data(), x.data(), wq, N, C, OC);
  cpu::matmul_backward(db.data(), nullptr, nullptr, g.data(), x.data(), f32_weight(deq, OC, C), N, C, OC);
  CHECK(da == db);
  // BF16
  std::vector<uint16_t> bf(w.size());
  for (size_t i = 0; i < w.size(); i++) bf[i] = qt::f32_to_bf16(w[i]);
  qt::Weight wb = wq;
  wb.dtype = qt::DType::BF16;
  wb.data = bf.data();
  cpu::matmul_forward(a.data(), x.data(), wb, nullptr, N, C, OC);
  for (int n = 0; n < N; n++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += static_cast<double>(x[n * C + c]) * qt::bf16_to_f32(bf[c]);
    CHECK_NEAR(a[n * OC], s, 1e-4);
  }
}

static void lora_grad_case(float dropout) {
  const int N = 4, C = 6, OC = 5, R = 3;
  const float scale = 2.0f;  // alpha / r
  const uint64_t seed = 99;
  auto x = rand_vec(N * C, 25);
  auto A = rand_vec(R * C, 26);
  auto Bw = rand_vec(OC * R, 27);
  auto g = rand_vec(N * OC, 28);
  std::vector<float> out(N * OC), u(N * R), scratch(N * C + N * R), dx(N * C, 0.0f), dA(R * C, 0.0f), dB(OC * R, 0.0f);
  std::fill(out.begin(), out.end(), 0.0f);
  cpu::lora_forward(out.data(), u.data(), scratch.data(), x.data(), A.data(), Bw.data(), scale, dropout, seed, N, C, OC, R);
  cpu::lora_backward(dx.data(), dA.data(), dB.data(), scratch.data(), g.data(), x.data(), u.data(), A.data(), Bw.data(),
                     scale, dropout, seed, N, C, OC, R);
  auto loss = [&] {
    std::fill(out.begin(), out.end(), 0.0f);
    cpu::lora_forward(out.data(), u.data(), scratch.data(), x.data(), A.data(), Bw.data(), scale, dropout, seed, N, C, OC, R);
    return weighted_sum(out.data(), g);
  };
  grad_check("lora dinp", x.data(), dx, loss, 1e-2f, 1e-2, 1e-4);
  grad_check("lora dA", A.data(), dA, loss, 1e-2f, 1e-2, 1e-4);
  grad_check("lora dB", Bw.data(), dB, loss, 1e-2f, 1e-2, 1e-4);
  // forward against the definition: out = scale * B (A dropout(x))
  loss();
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = 0;
      for (int r = 0; r < R; r++) {
        double ar = 0;
        for (int c = 0; c < C; c++) {
          const size_t i = static_cast<size_t>(n) * C + c;
          const float keep = dropout > 0 ? (qt::rng_mask_uniform(seed, i) >= dropout ? 1.0f / (1.0f - dropout) : 0.0f) : 1.0f;
          ar += A[r * C + c] * x[i] * keep;
        }
        s += Bw[o * R + r] * ar;
      }
      CHECK_NEAR(out[n * OC + o], scale * s, 1e-4);
    }
}

TEST(grad_lora_with_scaling) { lora_grad_case(0.0f); }

TEST(lora_mask_draws_quads_of_uniforms_from_one_rng_value) {
  // rng_mask_uniform: elements 4k + j are bits 48 - 16 j .. 63 - 16 j of rng_u64(seed, k); all in [0, 1) with 16 bits;
  // rng_mask_quad and rng_mask_pair give the same values; over 1M elements the keep rate at p = 0.1 and the mean are
  // right and neighbours of one draw are uncorrelated (the mask keeps the statistics of one draw per element).
  const uint64_t seed = 1234;
  const uint64_t ms = qt::mix64(seed);
  for (uint64_t k : {uint64_t{0}, uint64_t{1}, uint64_t{77}, uint64_t{1} << 40}) {
    const uint64_t h = qt::rng_u64(seed, k);
    float q[4] = {-1, -1, -1, -1};
    qt::rng_mask_quad(ms, k, q);
    for (unsigned j = 0; j < 4; j++) {
      const float u = qt::rng_mask_uniform(seed, 4 * k + j);
      CHECK_EQ(u, static_cast<float>((h >> (48 - 16 * j)) & 0xffff) / 65536.0f);
      CHECK(q[j] == u);
    }
    float p0 = -1, p1 = -1, p2 = -1, p3 = -1;
    qt::rng_mask_pair(ms, 2 * k, p0, p1);
    qt::rng_mask_pair(ms, 2 * k + 1, p2, p3);
    CHECK(p0 == q[0] && p1 == q[1] && p2 == q[2] && p3 == q[3]);
  }
  const int n = 1 << 20;
  double sum = 0, sum_prod = 0;
  int kept = 0;
  for (int i = 0; i < n; i += 4) {
    float u[4];
    for (int j = 0; j < 4; j++) {
      u[j] = qt::rng_mask_uniform(seed, static_cast<uint64_t>(i + j));
      CHECK(u[j] >= 0.0f && u[j] < 1.0f);
      sum += u[j];
      kept += u[j] >= 0.1f;
    }
    for (int j = 0; j < 3; j++) sum_prod += (u[j] - 0.5) * (u[j + 1] - 0.5);
  }
  CHECK_NEAR(sum / n, 0.5, 2e-3);
  CHECK_NEAR(static_cast<double>(kept) / n, 0.9, 2e-3);
  CHECK_NEAR(sum_prod / (n / 4 * 3) * 12.0, 0.0, 1e-2);  // correlation of a draw's neighbouring fields (var of U(0,1) = 1/12)
}

TEST(grad_lora_with_dropout) { lora_grad_case(0.3f); }

TEST(grad_cross_entropy_masked_mean) {
  const int N = 5, V = 7;
  auto logits = rand_vec(N * V, 29, -3, 3);
  std::vector<int32_t> targets = {2, -1, 6, 0, -100};
  const int counted = 3;
  std::vector<float> losses(N), d(N * V);
  cpu::cross_entropy_backward(d.data(), logits.data(), targets.data(), 1.0f / counted, N, V);
  auto loss = [&] {
    cpu::cross_entropy_forward(losses.data(), logits.data(), targets.data(), N, V);
    double s = 0;
    for (float l : losses) s += l;
    return s / counted;
  };
  grad_check("cross_entropy dlogits", logits.data(), d, loss, 1e-2f, 1e-2, 1e-5);
  loss();
  CHECK_EQ(losses[1], 0.0f);
  CHECK_EQ(losses[4], 0.0f);
  double lse = 0;
  for (int j = 0; j < V; j++) lse += std::exp(static_cast<double>(logits[j]));
  CHECK_NEAR(losses[0], std::log(lse) - logits[2], 1e-5);
  for (int j = 0; j < V; j++) CHECK_EQ(d[V + j], 0.0f);  // masked row: no gradient
  // in place (dlogits == logits) gives the same values
  auto copy = logits;
  cpu::cross_entropy_backward(copy.data(), copy.data(), targets.data(), 1.0f / counted, N, V);
  CHECK(copy == d);
}

TEST(cross_entropy_fused_is_forward_then_backward_in_place) {
  const int N = 4, V = 33;
  auto logits = rand_vec(N * V, 321, -5, 5);
  const std::vector<int32_t> t = {3, -100, 32, 0};
  std::vector<float> loss(N), d(N * V), lf(N, 9.0f), inplace = logits;
  cpu::cross_entropy_forward(loss.data(), logits.data(), t.data(), N, V);
  cpu::cross_entropy_backward(d.data(), logits.data(), t.data(), 0.5f, N, V);
  cpu::cross_entropy_fused(lf.data(), inplace.data(), inplace.data(), t.data(), 0.5f, N, V);
  CHECK(lf == loss);
  CHECK(inplace == d);
}

TEST(neftune_noise_magnitude_and_padding) {
  const int B = 2, T = 6, C = 16;
  std::vector<int32_t> lengths = {6, 2};
  std::vector<float> x(B * T * C, 0.0f);
  const float alpha = 5.0f;
  cpu::neftune_forward(x.data(), lengths.data(), alpha, 1234, B, T, C);
  const float mag0 = alpha / std::sqrt(6.0f * C), mag1 = alpha / std::sqrt(2.0f * C);
  double max0 = 0, max1 = 0;
  for (int t = 0; t < T; t++)
    for (int c = 0; c < C; c++) {
      max0 = std::max(max0, static_cast<double>(std::fabs(x[(0 * T + t) * C + c])));
      const float v1 = x[(1 * T + t) * C + c];
      if (t >= 2) CHECK_EQ(v1, 0.0f);  // padding: no noise
      else max1 = std::max(max1, static_cast<double>(std::fabs(v1)));
    }
  CHECK(max0 <= mag0 && max0 > 0.8 * mag0);  // uniform in [-mag, mag], L = the row's true length
  CHECK(max1 <= mag1 && max1 > 0.8 * mag1);
  std::vector<float> y(x.size(), 0.0f);
  cpu::neftune_forward(y.data(), lengths.data(), 0.0f, 1234, B, T, C);  // alpha 0: off
  for (float v : y) CHECK_EQ(v, 0.0f);
  cpu::neftune_forward(y.data(), lengths.data(), alpha, 1234, B, T, C);
  CHECK(y == x);  // same seed, same noise
}

TEST(argmax_rows_first_maximum_and_nan) {
  const int V = 9;
  std::vector<float> x = {1, 5, 2, 5, 0, -1, 3, 4, 5,                          // ties: the first
                          -3, -2, -1, -4, -5, -6, -7, -8, -0.5f,               // the last
                          1, 2, std::nanf(""), 9, 0, 0, 0, 0, 0,                // a NaN: -1 (the host samples)
                          -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  std::vector<int32_t> out(4, 99);
  qt::cpu::argmax_rows(out.data(), x.data(), 4, V);
  CHECK_EQ(out[0], 1);
  CHECK_EQ(out[1], 8);
  CHECK_EQ(out[2], -1);
  CHECK_EQ(out[3], 0);
  // the same answer as std::max_element (greedy sampling on the host) for finite rows
  for (int n : {0, 1, 3}) {
    const float* r = x.data() + static_cast<size_t>(n) * V;
    CHECK_EQ(out[static_cast<size_t>(n)], static_cast<int32_t>(std::max_element(r, r + V) - r));
  }
}

TEST(adamw_matches_torch_formula) {
  const size_t n = 5;
  auto p = rand_vec(n, 30);
  auto g1 = rand_vec(n, 31), g2 = rand_vec(n, 32);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  auto ref = p;
  std::vector<double> rm(n, 0), rv(n, 0);
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  for (int t = 1; t <= 2; t++) {
    const auto& g = t == 1 ? g1 : g2;
    cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, static_cast<float>(lr), 0.9f, 0.999f, 1e-8f, 0.1f, t);
    for (size_t i = 0; i < n; i++) {
      double r = ref[i] * (1 - lr * wd);
      rm[i] = b1 * rm[i] + (1 - b1) * g[i];
      rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
      const double mh = rm[i] / (1 - std::pow(b1, t)), vh = rv[i] / (1 - std::pow(b2, t));
      ref[i] = static_cast<float>(r - lr * mh / (std::sqrt(vh) + eps));
    }
  }
  for (size_t i = 0; i < n; i++) CHECK_NEAR(p[i], ref[i], 1e-6);
  CHECK_NEAR(cpu::sum_squares(g1.data(), n), std::inner_product(g1.begin(), g1.end(), g1.begin(), 0.0), 1e-6);
}
