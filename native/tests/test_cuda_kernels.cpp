// The CUDA backend's fast kernels, run here without a GPU: their portable bodies (engine/cuda/attention_tc.h,
// nf4_kernels.h) execute in the warp simulator (warpsim.h) and are compared with the CPU reference ops on fresh
// random inputs. This checks their tiling, masking, fragment layouts and numerics; gpu_check repeats the
// comparison on the GPU itself (native/gpu/gpu_check.cpp, both the new and the old path of each op).
//   tensor-core attention: bf16 operands, fp32 accumulation: rel. L2 vs the fp32 CPU op within bf16 tolerance
//                          (the bounds below are about 3x what these shapes give), lse exact to ~1e-3;
//   NF4 vectorised dequantization: bit-identical to the CPU (fp32) and to its rounding (bf16, fp16);
//   NF4 GEMV (run 2's and run 3's kernels): within fp32 rounding of the CPU matmul (rel. L2 <= 1e-5), run 3's
//                          bit-identical on any grid;
//   fused LoRA kernels (dropout mask inside): u, dA and dinp within fp32 rounding of cpu/lora.cpp (rel. L2 <= 1e-5);
//   tensor-core LoRA u = dropout(x) A^T (lora_xa_tc, hi/lo bf16 split): rel. L2 vs cpu/lora.cpp <= 2e-5, and at least
//                   20x below plain bf16 operands (computed here on the host), with the rule's slices of C and another;
//   decode kernels: RMSNorm of a few rows (rel. L2 <= 1e-6, as gpu_check; with the residual add fused in: the bits of
//                   the add then the plain rows kernel), single-query split-key attention in fp32
//                   (out <= 1e-5, lse <= 1e-6, -inf where the CPU has it).
// QT_SIM_BIG=1 adds a Llama-sized attention case (head size 128, GQA 8/2, T = 200; about a minute).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/attention_tc.h"
#include "cuda/decode_kernels.h"
#include "cuda/lora_kernels.h"
#include "cuda/nf4_kernels.h"
#include "dtype.h"
#include "harness.h"
#include "nf4.h"
#include "rng.h"
#include "warpsim.h"

namespace {

std::vector<float> rnd(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * qt::rng_uniform(seed, i);
  return v;
}

double rel_l2(const std::vector<float>& ref, const std::vector<float>& x) {
  if (ref.size() != x.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    if (!std::isfinite(x[i]) && !(std::isinf(ref[i]) && ref[i] == x[i])) return std::numeric_limits<double>::infinity();
    if (std::isinf(ref[i])) continue;
    const double d = static_cast<double>(ref[i]) - x[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> r(a.size());
  for (size_t i = 0; i < a.size(); i++) r[i] = a[i] - b[i];
  return r;
}

// ---- attention -------------------------------------------------------------------------------------------------

struct AttnCase {
  const char* name;
  int B, Tq, Tk, NH, NKV, HS;
  std::vector<int32_t> lengths;  // empty: none
};

// the padded 16-bit copy attention.cu's attn_pad16 makes of an fp32 [rows, HS] tensor
template <qt::kern::TcOp OP>
std::vector<uint16_t> pad16(const std::vector<float>& x, int HS) {
  const int HSP = HS <= 32 ? 32 : HS <= 64 ? 64 : 128, CH = HSP / 8;
  const int64_t rows = static_cast<int64_t>(x.size()) / HS;
  std::vector<uint16_t> r(static_cast<size_t>(rows) * HSP);
  for (int64_t row = 0; row < rows; row++)
    for (int ch = 0; ch < CH; ch++) {
      const qt::kern::U4 u = qt::kern::pad16_chunk<OP>(x.data(), row, ch, HS);
      std::memcpy(&r[static_cast<size_t>(row * CH + ch) * 8], &u, 16);
    }
  return r;
}

template <int HSP>
void run_tc(const qt::kern::AttnArgs& a, bool backward, bool f16) {
  if (backward && a.ds) {  // QT_CUDA_ATTN_DS: the dk/dv pass first (it stores dS), then dq from dS
    using namespace qt::kern;
    warpsim::Dim3 gk{(a.Tk + kAttnBK - 1) / kAttnBK, a.dkv_split ? a.NH : a.NKV, a.B};
    warpsim::launch(gk, kAttnThreads, attn_dkv_ds_smem(HSP), [&](warpsim::Ctx& c) { attn_dkv_tc<HSP>(c, a); });
    warpsim::Dim3 gq{(a.Tq + kAttnBQ - 1) / kAttnBQ, a.NH, a.B};
    warpsim::launch(gq, kAttnThreads, attn_dq_ds_smem(HSP), [&](warpsim::Ctx& c) { attn_dq_ds_tc<HSP>(c, a); });
    return;
  }
  using namespace qt::kern;
  warpsim::Dim3 gq{(a.Tq + kAttnBQ - 1) / kAttnBQ, a.NH, a.B};
  if (!backward) {
    // f16 operands on the default two m-tiles per warp; bf16 on one (both shapes of the kernel are covered)
    if (f16) {
      gq.x = (a.Tq + attn_fwd_rows(2) - 1) / attn_fwd_rows(2);
      warpsim::launch(gq, kAttnThreads, attn_fwd_smem(HSP, 2), [&](warpsim::Ctx& c) { attn_fwd_tc<HSP, TcOp::F16, 2>(c, a); });
    } else {
      gq.x = (a.Tq + attn_fwd_rows(1) - 1) / attn_fwd_rows(1);
      warpsim::launch(gq, kAttnThreads, attn_fwd_smem(HSP, 1), [&](warpsim::Ctx& c) { attn_fwd_tc<HSP, TcOp::BF16, 1>(c, a); });
    }
    return;
  }
  warpsim::launch(gq, kAttnThreads, attn_dq_smem(HSP), [&](warpsim::Ctx& c) { attn_dq_tc<HSP>(c, a); });
  warpsim::Dim3 gk{(a.Tk + kAttnBK - 1) / kAttnBK, a.dkv_split ? a.NH : a.NKV, a.B};
  warpsim::launch(gk, kAttnThreads, attn_dkv_smem(HSP), [&](warpsim::Ctx& c) { attn_dkv_tc<HSP>(c, a); });
}

void run_tc_any(const qt::kern::AttnArgs& a, bool backward, bool f16 = false) {
  if (a.HS <= 32) run_tc<32>(a, backward, f16);
  else if (a.HS <= 64) run_tc<64>(a, backward, f16);
  else run_tc<128>(a, backward, f16);
}

// The backward with the dk/dv pass split over query heads: partials (poisoned, so every element must be written), then
// their sum over each KV group added in head order, as attention.cu's attn_group_sum_kernel does
void run_tc_backward_split(qt::kern::AttnArgs a) {
  const size_t n = static_cast<size_t>(a.B) * a.Tk * a.NH * a.HS;
  std::vector<float> pk(n, std::nanf("")), pv(n, std::nanf(""));
  float* dk = a.dk;
  float* dv = a.dv;
  a.dkv_split = true;
  a.dk = pk.data();
  a.dv = pv.data();
  run_tc_any(a, true);
  const int group = a.NH / a.NKV;
  for (size_t e = 0; e < static_cast<size_t>(a.B) * a.Tk * a.NKV * a.HS; e++) {
    const size_t d = e % a.HS, rk = e / a.HS;
    float sk = 0, sv = 0;
    for (int g = 0; g < group; g++) {
      sk += pk[(rk * group + g) * a.HS + d];
      sv += pv[(rk * group + g) * a.HS + d];
    }
    dk[e] += sk;
    dv[e] += sv;
  }
}

struct AttnErrors {
  double out, lse, dq, dk, dv, out16, lse16, dq_split, dk_split, dv_split;
  double dq_ds = 0, dk_ds = 0, dv_ds = 0;  // dS stored by the dk/dv pass (Tq == Tk only)
};

AttnErrors attention_case(const AttnCase& k, uint64_t seed) {
  using qt::kern::TcOp;
  const size_t nq = static_cast<size_t>(k.B) * k.Tq * k.NH * k.HS, nk = static_cast<size_t>(k.B) * k.Tk * k.NKV * k.HS;
  const size_t nl = static_cast<size_t>(k.B) * k.NH * k.Tq;
  auto q = rnd(nq, seed + 1, -2, 2), kk = rnd(nk, seed + 2, -2, 2), v = rnd(nk, seed + 3);
  const int32_t* len = k.lengths.empty() ? nullptr : k.lengths.data();
  std::vector<float> out_c(nq), lse_c(nl);
  qt::cpu::attention_forward(out_c.data(), lse_c.data(), q.data(), kk.data(), v.data(), len, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS);

  qt::kern::AttnArgs a;
  a.B = k.B;
  a.Tq = k.Tq;
  a.Tk = k.Tk;
  a.NH = k.NH;
  a.NKV = k.NKV;
  a.HS = k.HS;
  a.scale = 1.0f / std::sqrt(static_cast<float>(k.HS));
  const auto qb = pad16<TcOp::BF16>(q, k.HS), kb = pad16<TcOp::BF16>(kk, k.HS), vb = pad16<TcOp::BF16>(v, k.HS);
  a.q = qb.data();
  a.k = kb.data();
  a.v = vb.data();
  a.lengths = len;
  std::vector<float> out_t(nq, std::nanf("")), lse_t(nl, std::nanf(""));  // poisoned: every element must be written
  a.out = out_t.data();
  a.lse = lse_t.data();
  run_tc_any(a, false);
  AttnErrors e{};
  e.out = rel_l2(out_c, out_t);
  e.lse = rel_l2(lse_c, lse_t);
  for (size_t i = 0; i < nl; i++)  // -inf exactly where the CPU has it (rows that see nothing)
    if (std::isinf(lse_c[i]) != std::isinf(lse_t[i])) e.lse = std::numeric_limits<double>::infinity();
  // the forward on fp16 operands (QT_CUDA_ATTN=tc16)
  const auto qh = pad16<TcOp::F16>(q, k.HS), kh = pad16<TcOp::F16>(kk, k.HS), vh = pad16<TcOp::F16>(v, k.HS);
  a.q = qh.data();
  a.k = kh.data();
  a.v = vh.data();
  std::vector<float> out16(nq, std::nanf("")), lse16(nl, std::nanf(""));
  a.out = out16.data();
  a.lse = lse16.data();
  run_tc_any(a, false, true);
  e.out16 = rel_l2(out_c, out16);
  e.lse16 = rel_l2(lse_c, lse16);
  for (size_t i = 0; i < nl; i++)
    if (std::isinf(lse_c[i]) != std::isinf(lse16[i])) e.lse16 = std::numeric_limits<double>::infinity();

  // backward from the CPU forward's out/lse (as the GPU check does), accumulating into random gradients
  auto dout = rnd(nq, seed + 4), gq0 = rnd(nq, seed + 5), gk0 = rnd(nk, seed + 6), gv0 = rnd(nk, seed + 7);
  std::vector<float> gq = gq0, gk = gk0, gv = gv0;
  qt::cpu::attention_backward(gq.data(), gk.data(), gv.data(), dout.data(), q.data(), kk.data(), v.data(), out_c.data(), lse_c.data(),
                              len, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS);
  std::vector<float> D(nl);
  for (int b = 0; b < k.B; b++)
    for (int i = 0; i < k.Tq; i++)
      for (int h = 0; h < k.NH; h++) {
        const size_t row = ((static_cast<size_t>(b) * k.Tq + i) * k.NH + h) * k.HS;
        float s = 0;
        for (int d = 0; d < k.HS; d++) s += dout[row + d] * out_c[row + d];
        D[(static_cast<size_t>(b) * k.NH + h) * k.Tq + i] = s;
      }
  const auto dob = pad16<TcOp::BF16>(dout, k.HS);
  std::vector<float> tq = gq0, tk = gk0, tv = gv0;
  a.q = qb.data();
  a.k = kb.data();
  a.v = vb.data();
  a.out = nullptr;
  a.lse = nullptr;
  a.dout = dob.data();
  a.lse_in = lse_c.data();
  a.D = D.data();
  a.dq = tq.data();
  a.dk = tk.data();
  a.dv = tv.data();
  run_tc_any(a, true);
  e.dq = rel_l2(minus(gq, gq0), minus(tq, gq0));
  e.dk = rel_l2(minus(gk, gk0), minus(tk, gk0));
  e.dv = rel_l2(minus(gv, gv0), minus(tv, gv0));
  // the same with the dk/dv pass split over query heads
  std::vector<float> sq = gq0, sk = gk0, sv = gv0;
  a.dq = sq.data();
  a.dk = sk.data();
  a.dv = sv.data();
  run_tc_backward_split(a);
  e.dq_split = rel_l2(minus(gq, gq0), minus(sq, gq0));
  e.dk_split = rel_l2(minus(gk, gk0), minus(sk, gk0));
  e.dv_split = rel_l2(minus(gv, gv0), minus(sv, gv0));
  if (k.Tq == k.Tk) {  // dS through memory (poisoned: every tile dq reads must have been written), split and not
    for (bool split : {false, true}) {
      std::vector<uint16_t> ds(static_cast<size_t>(k.B) * k.NH * qt::kern::attn_ds_tiles(k.Tq) * 64 * 64, 0x7fc0);
      std::vector<float> xq = gq0, xk = gk0, xv = gv0;
      qt::kern::AttnArgs d = a;
      d.ds = ds.data();
      d.dq = xq.data();
      d.dk = xk.data();
      d.dv = xv.data();
      if (split) run_tc_backward_split(d);
      else run_tc_any(d, true);
      e.dq_ds = std::max(e.dq_ds, rel_l2(minus(gq, gq0), minus(xq, gq0)));
      e.dk_ds = std::max(e.dk_ds, rel_l2(minus(gk, gk0), minus(xk, gk0)));
      e.dv_ds = std::max(e.dv_ds, rel_l2(minus(gv, gv0), minus(xv, gv0)));
    }
  }
  return e;
}

void check_attention(const AttnCase& k, uint64_t seed, double tol_out, double tol_grad) {
  const AttnErrors e = attention_case(k, seed);
  std::printf("    tc attention %-40s out %.2e lse %.2e dq %.2e dk %.2e dv %.2e | fp16 forward: out %.2e lse %.2e | split dk/dv: dk %.2e dv %.2e\n",
              k.name, e.out, e.lse, e.dq, e.dk, e.dv, e.out16, e.lse16, e.dk_split, e.dv_split);
  CHECK_MSG(e.out <= tol_out, k.name << ": out rel L2 " << e.out);
  // fp16 operands: 8x finer rounding of q, k, v and P; the output error drops accordingly
  CHECK_MSG(e.out16 <= tol_out / 5 && e.out16 < e.out / 2, k.name << ": fp16 forward out rel L2 " << e.out16 << " (bf16 " << e.out << ")");
  CHECK_MSG(e.lse16 <= 2e-4, k.name << ": fp16 forward lse rel L2 " << e.lse16);
  CHECK_MSG(e.lse <= 2e-3, k.name << ": lse rel L2 " << e.lse);
  CHECK_MSG(e.dq <= tol_grad, k.name << ": dq rel L2 " << e.dq);
  CHECK_MSG(e.dk <= tol_grad, k.name << ": dk rel L2 " << e.dk);
  CHECK_MSG(e.dv <= tol_grad, k.name << ": dv rel L2 " << e.dv);
  CHECK_MSG(e.dq_split <= tol_grad, k.name << ": dq rel L2 (split dk/dv pass) " << e.dq_split);
  CHECK_MSG(e.dk_split <= tol_grad, k.name << ": dk rel L2 (split dk/dv pass) " << e.dk_split);
  CHECK_MSG(e.dv_split <= tol_grad, k.name << ": dv rel L2 (split dk/dv pass) " << e.dv_split);
  std::printf("    tc attention %-40s dS through memory: dq %.2e dk %.2e dv %.2e\n", k.name, e.dq_ds, e.dk_ds, e.dv_ds);
  CHECK_MSG(e.dq_ds <= tol_grad, k.name << ": dq rel L2 (dS through memory) " << e.dq_ds);
  CHECK_MSG(e.dk_ds <= tol_grad, k.name << ": dk rel L2 (dS through memory) " << e.dk_ds);
  CHECK_MSG(e.dv_ds <= tol_grad, k.name << ": dv rel L2 (dS through memory) " << e.dv_ds);
}

// ---- NF4 -------------------------------------------------------------------------------------------------------

struct Nf4Pair {
  qt::Nf4Host q;
  qt::Weight w;  // host pointers into q
};

Nf4Pair make_nf4(int rows, int cols, bool dq, uint64_t seed) {
  auto v = rnd(static_cast<size_t>(rows) * cols, seed, -0.08f, 0.08f);
  for (size_t i = 0; i < v.size(); i += 331) v[i] *= 7.0f;  // outliers: the block absmax varies
  Nf4Pair p;
  p.q = qt::nf4_quantize(v.data(), rows, cols, dq);
  p.w.dtype = qt::DType::NF4;
  p.w.rows = rows;
  p.w.cols = cols;
  p.w.data = p.q.codes.data();
  p.w.double_quant = dq;
  if (dq) {
    p.w.absmax_q = p.q.absmax_q.data();
    p.w.absmax_scale = p.q.absmax_scale.data();
    p.w.absmax_offset = p.q.absmax_offset;
  } else {
    p.w.absmax = p.q.absmax.data();
  }
  return p;
}

qt::kern::Nf4Args nf4_args(const qt::Weight& w) {
  qt::kern::Nf4Args a;
  a.codes = static_cast<const uint8_t*>(w.data);
  a.absmax = w.absmax;
  a.absmax_q = w.absmax_q;
  a.absmax_scale = w.absmax_scale;
  a.offset = w.absmax_offset;
  a.dq = w.double_quant;
  return a;
}

// the shared-memory table every NF4 kernel starts from (the launcher fills it from constant memory on the GPU)
void fill_tab(warpsim::Ctx& c) {
  float* tab = reinterpret_cast<float*>(c.smem());
  for (int i = c.tid(); i < qt::kern::kNf4TabSize; i += c.nthreads()) tab[i] = i < 16 ? qt::kNf4Codes[i] : qt::dynamic_map()[i - 16];
  c.sync();
}

// The NF4 dequantization kernels on `blocks` blocks of 64 threads: nf4_dequant16 (units of 8 weights) when UNITS16,
// else nf4_dequant_vec (chunks of 32).
template <qt::kern::DqOut OUT, bool UNITS16>
void run_dequant(void* out, const qt::Weight& w, int blocks) {
  const int64_t n = w.rows * w.cols;
  const qt::kern::Nf4Args a = nf4_args(w);
  warpsim::launch({blocks, 1, 1}, 64, qt::kern::kNf4TabSize * 4, [&](warpsim::Ctx& c) {
    fill_tab(c);
    const float* tab = reinterpret_cast<float*>(c.smem());
    if (UNITS16) qt::kern::nf4_dequant16<OUT>(c, out, a, n / 8, tab);
    else qt::kern::nf4_dequant_vec<OUT>(c, out, a, n / 32, tab);
  });
}


}  // namespace

TEST(sim_warpsim_mma_and_shuffle_follow_the_ptx_layouts) {
  // One warp: A = rows of distinct values, B = identity-like; check D = A B + C elementwise against a plain product,
  // with the fragments built from the documented layout (independently of attention_tc.h's helpers).
  float A[16][16], Bm[16][8], Cm[16][8];
  for (int r = 0; r < 16; r++)
    for (int k = 0; k < 16; k++) A[r][k] = qt::bf16_to_f32(qt::f32_to_bf16(0.25f * (r - 7) + 0.0625f * k));
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++) Bm[k][n] = qt::bf16_to_f32(qt::f32_to_bf16(((k * 3 + n * 5) % 7) * 0.5f - 1.0f));
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 8; n++) Cm[r][n] = static_cast<float>(r * 8 + n);
  for (bool f16 : {false, true}) {  // the values are exact in bf16 and in fp16
    std::vector<float> D(16 * 8, std::nanf(""));
    std::vector<float> xor_seen(32);
    warpsim::launch({1, 1, 1}, 32, 0, [&](warpsim::Ctx& c) {
      const int lane = c.tid(), g = lane / 4, t = lane % 4;
      auto pk = [&](float lo, float hi) { return f16 ? qt::kern::pack_f16(lo, hi) : qt::kern::pack_bf16(lo, hi); };
      const uint32_t a[4] = {pk(A[g][2 * t], A[g][2 * t + 1]), pk(A[g + 8][2 * t], A[g + 8][2 * t + 1]),
                             pk(A[g][2 * t + 8], A[g][2 * t + 9]), pk(A[g + 8][2 * t + 8], A[g + 8][2 * t + 9])};
      const uint32_t b[2] = {pk(Bm[2 * t][g], Bm[2 * t + 1][g]), pk(Bm[2 * t + 8][g], Bm[2 * t + 9][g])};
      float d[4] = {Cm[g][2 * t], Cm[g][2 * t + 1], Cm[g + 8][2 * t], Cm[g + 8][2 * t + 1]};
      if (f16) c.mma_f16(d, a, b);
      else c.mma_bf16(d, a, b);
      D[g * 8 + 2 * t] = d[0];
      D[g * 8 + 2 * t + 1] = d[1];
      D[(g + 8) * 8 + 2 * t] = d[2];
      D[(g + 8) * 8 + 2 * t + 1] = d[3];
      xor_seen[static_cast<size_t>(lane)] = c.shfl_xor(static_cast<float>(lane), 5);
    });
    for (int r = 0; r < 16; r++)
      for (int n = 0; n < 8; n++) {
        double s = Cm[r][n];
        for (int k = 0; k < 16; k++) s += static_cast<double>(A[r][k]) * Bm[k][n];
        CHECK_NEAR(D[static_cast<size_t>(r * 8 + n)], s, 1e-4);
      }
    for (int l = 0; l < 32; l++) CHECK_EQ(xor_seen[static_cast<size_t>(l)], static_cast<float>(l ^ 5));
  }
  // a barrier some threads skip is reported, not hung
  bool threw = false;
  try {
    warpsim::launch({1, 1, 1}, 64, 0, [&](warpsim::Ctx& c) {
      if (c.tid() < 32) c.sync();
    });
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(sim_warpsim_ldmatrix_and_cp_async_follow_the_ptx_layouts) {
  // One warp, a 16 x 24 shared-memory array of distinct 16-bit values M[r][c] = 100 r + c (row stride 24 elements =
  // 48 bytes); matrix i is rows 8 (i & 1) .. +7 at columns 8 (i >> 1) .. +7. Expected registers written out from the
  // PTX ISA's description, independently of attention_tc.h's helpers.
  constexpr int LD = 24;
  std::vector<uint16_t> src(16 * LD);
  for (int r = 0; r < 16; r++)
    for (int col = 0; col < LD; col++) src[static_cast<size_t>(r * LD + col)] = static_cast<uint16_t>(100 * r + col);
  std::vector<uint32_t> plain(32 * 4), trans(32 * 4);
  std::vector<uint16_t> zeroed(8, 0xffff);
  warpsim::launch({1, 1, 1}, 32, 16 * LD * 2 + 16, [&](warpsim::Ctx& c) {
    uint16_t* s = reinterpret_cast<uint16_t*>(c.smem());
    const int lane = c.tid();
    for (int e = lane; e < 16 * LD / 8; e += 32) c.cp_async16(s + e * 8, src.data() + e * 8, true);
    if (lane == 0) c.cp_async16(s + 16 * LD, src.data(), false);  // src-size 0: zeros
    c.cp_async_commit();
    c.cp_async_wait_all();
    c.sync();
    const int i = lane / 8, r = lane % 8;
    const uint16_t* row = s + (8 * (i & 1) + r) * LD + 8 * (i >> 1);
    c.ldsm_x4(&plain[static_cast<size_t>(lane) * 4], row);
    c.ldsm_x4_t(&trans[static_cast<size_t>(lane) * 4], row);
    if (lane == 0) std::memcpy(zeroed.data(), s + 16 * LD, 16);
  });
  auto M = [&](int i, int r, int col) { return static_cast<uint32_t>(100 * (8 * (i & 1) + r) + 8 * (i >> 1) + col); };
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
      CHECK_EQ(plain[static_cast<size_t>(lane * 4 + i)], M(i, g, 2 * t) | (M(i, g, 2 * t + 1) << 16));
      CHECK_EQ(trans[static_cast<size_t>(lane * 4 + i)], M(i, 2 * t, g) | (M(i, 2 * t + 1, g) << 16));
    }
  }
  for (uint16_t z : zeroed) CHECK_EQ(z, 0);
}

TEST(sim_tc_attention_matches_cpu) {
  // bf16 operands: out/dv errors ~ 2^-9 per product averaged over keys; dq/dk carry the rounding of q and k too
  check_attention({"GQA 4/2 HS=32, padded 70/45", 2, 70, 70, 4, 2, 32, {70, 45}}, 100, 1.5e-2, 3e-2);
  check_attention({"cached queries Tq=5 Tk=40, HS=64, MQA", 1, 5, 40, 2, 1, 64, {}}, 200, 1.5e-2, 3e-2);
  check_attention({"HS=8 (padded to 32), an empty row", 2, 33, 33, 2, 2, 8, {0, 33}}, 300, 1.5e-2, 3e-2);
  check_attention({"decode Tq=1 Tk=130, HS=128, GQA 4/2", 1, 1, 130, 4, 2, 128, {}}, 400, 1.5e-2, 3e-2);
  check_attention({"two query tiles, keys past the padding", 1, 129, 129, 2, 1, 16, {100}}, 500, 1.5e-2, 3e-2);
  if (const char* big = std::getenv("QT_SIM_BIG"); big && std::string(big) == "1")
    check_attention({"Llama-sized GQA 8/2 HS=128 T=200, padded", 2, 200, 200, 8, 2, 128, {200, 137}}, 600, 1.5e-2, 3e-2);
}

TEST(sim_nf4_vectorised_dequant_is_bit_identical) {
  for (bool dq : {true, false}) {
    Nf4Pair p = make_nf4(40, 448, dq, dq ? 11 : 12);  // 17920 weights = 560 chunks of 32 (> threads: grid-stride)
    const size_t n = static_cast<size_t>(p.w.rows * p.w.cols);
    std::vector<float> ref(n);
    qt::cpu::dequantize(ref.data(), p.w);
    std::vector<float> f(n, std::nanf(""));
    run_dequant<qt::kern::DqOut::F32, false>(f.data(), p.w, 3);
    CHECK(std::memcmp(f.data(), ref.data(), n * 4) == 0);
    std::vector<uint16_t> bf(n, 0xffff), hf(n, 0xffff);
    run_dequant<qt::kern::DqOut::BF16, false>(bf.data(), p.w, 2);
    run_dequant<qt::kern::DqOut::F16, false>(hf.data(), p.w, 5);
    for (size_t i = 0; i < n; i++) {
      CHECK_EQ(bf[i], qt::f32_to_bf16(ref[i]));
      CHECK_EQ(hf[i], qt::f32_to_f16(ref[i]));
    }
    // run 3's coalesced 16-bit kernel: the same bits (2240 units of 8 over 3 blocks of 64 threads: grid-stride steps
    // of 4 x 192 units with a partial last one; 1 block: 9 steps)
    for (int blocks : {3, 1}) {
      std::vector<uint16_t> bf2(n, 0xffff), hf2(n, 0xffff);
      run_dequant<qt::kern::DqOut::BF16, true>(bf2.data(), p.w, blocks);
      run_dequant<qt::kern::DqOut::F16, true>(hf2.data(), p.w, blocks);
      CHECK(bf2 == bf && hf2 == hf);
    }
  }
  // the host fp16 rounding used by the simulated kernel agrees with the engine's converter on awkward values
  for (float x : {0.0f, -0.0f, 1e-8f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 65504.0f, 65519.0f, 65520.0f, -3.14159f, 1.0009765625f})
    CHECK_EQ(qt::kern::f16_bits(x), qt::f32_to_f16(x));
}

TEST(sim_nf4_gemv_matches_cpu_matmul) {
  for (bool dq : {true, false})
    for (int N : {1, 2, 3, 4}) {
      const int OC = 37, C = 320;  // a partial last warp and block; 10 chunks per row (< 32 lanes)
      Nf4Pair p = make_nf4(OC, C, dq, 20 + N);
      auto x = rnd(static_cast<size_t>(N) * C, 30 + N, -2, 2), bias = rnd(OC, 40 + N);
      for (bool with_bias : {false, true}) {
        std::vector<float> ref(static_cast<size_t>(N) * OC), got(ref.size(), std::nanf(""));
        qt::cpu::matmul_forward(ref.data(), x.data(), p.w, with_bias ? bias.data() : nullptr, N, C, OC);
        qt::kern::GemvArgs a;
        a.out = got.data();
        a.x = x.data();
        a.bias = with_bias ? bias.data() : nullptr;
        a.w = nf4_args(p.w);
        a.N = N;
        a.C = C;
        a.OC = OC;
        const int blocks = (OC + qt::kern::kGemvRowsPerBlock - 1) / qt::kern::kGemvRowsPerBlock;
        warpsim::launch({blocks, 1, 1}, qt::kern::kGemvThreads, qt::kern::kGemvSmem, [&](warpsim::Ctx& c) {
          fill_tab(c);
          const float* tab = reinterpret_cast<const float*>(c.smem());
          if (N == 1) qt::kern::nf4_gemv<1>(c, a, tab);
          else if (N == 2) qt::kern::nf4_gemv<2>(c, a, tab);
          else if (N == 3) qt::kern::nf4_gemv<3>(c, a, tab);
          else qt::kern::nf4_gemv<4>(c, a, tab);
        });
        const double e = rel_l2(ref, got);
        CHECK_MSG(e <= 1e-5, "N=" << N << " dq=" << dq << " bias=" << with_bias << ": rel L2 " << e);
      }
    }
  // a long row (many chunks per lane)
  Nf4Pair p = make_nf4(16, 14336, true, 77);
  auto x = rnd(14336, 78, -2, 2);
  std::vector<float> ref(16), got(16, std::nanf(""));
  qt::cpu::matmul_forward(ref.data(), x.data(), p.w, nullptr, 1, 14336, 16);
  qt::kern::GemvArgs a;
  a.out = got.data();
  a.x = x.data();
  a.w = nf4_args(p.w);
  a.N = 1;
  a.C = 14336;
  a.OC = 16;
  warpsim::launch({(16 + qt::kern::kGemvRowsPerBlock - 1) / qt::kern::kGemvRowsPerBlock, 1, 1}, qt::kern::kGemvThreads, qt::kern::kGemvSmem,
                  [&](warpsim::Ctx& c) {
    fill_tab(c);
    qt::kern::nf4_gemv<1>(c, a, reinterpret_cast<const float*>(c.smem()));
  });
  CHECK_MSG(rel_l2(ref, got) <= 1e-5, "C=14336: rel L2 " << rel_l2(ref, got));
}

namespace {

// nf4_gemv3 on `blocks` blocks (fewer than the row groups need: the grid-stride loop runs; more: idle warps)
void run_gemv3(const qt::kern::GemvArgs& a, int blocks) {
  warpsim::launch({blocks, 1, 1}, qt::kern::kGemv3Threads, qt::kern::kGemv3Smem, [&](warpsim::Ctx& c) {
    fill_tab(c);
    const float* tab = reinterpret_cast<const float*>(c.smem());
    if (a.N == 1) qt::kern::nf4_gemv3<1>(c, a, tab);
    else if (a.N == 2) qt::kern::nf4_gemv3<2>(c, a, tab);
    else if (a.N == 3) qt::kern::nf4_gemv3<3>(c, a, tab);
    else qt::kern::nf4_gemv3<4>(c, a, tab);
  });
}

// nf4_gemv4 (one row of x staged in shared memory, transposed per tile of 32 chunks; RW rows per warp, U chunks per
// row and step) on `blocks` blocks
template <int RW, int U, int LUT = qt::kern::kLutNibble>
void run_gemv4(const qt::kern::GemvArgs& a, int blocks) {
  warpsim::launch({blocks, 1, 1}, qt::kern::kGemv3Threads, qt::kern::gemv4_smem_bytes(a.C, LUT), [&](warpsim::Ctx& c) {
    float* xs = reinterpret_cast<float*>(c.smem()) + qt::kern::kNf4TabSize;
    uint32_t* ptab = reinterpret_cast<uint32_t*>(xs + qt::kern::gemv4_xs_floats(a.C));
    qt::kern::nf4_gemv_stage_x(c, xs, a.x, a.C);
    fill_tab(c);  // ends with the block barrier the staged x needs too
    if (LUT == qt::kern::kLutPairF16) {
      qt::kern::nf4_pair_fill(c, ptab, reinterpret_cast<const float*>(c.smem()));
      c.sync();
    }
    qt::kern::nf4_gemv3<1, true, RW, U, LUT>(c, a, reinterpret_cast<const float*>(c.smem()), xs, ptab);
  });
}

}  // namespace

TEST(sim_nf4_gemv4_staged_x_equals_gemv3) {
  struct Shape {
    int OC, C, blocks;
  };
  // 320 inputs = 10 chunks: one partial tile; 1536 = 48 chunks: a whole tile and a partial one; a Llama down_proj row
  // (14336 inputs, 14 tiles) on 2 blocks; 9 rows x 4096 on 1 block (3 row groups for 8 warps)
  for (Shape sh : {Shape{37, 320, 1}, Shape{37, 320, 3}, Shape{21, 1536, 2}, Shape{9, 4096, 1}, Shape{6, 14336, 2}})
    for (bool dq : {true, false}) {
      Nf4Pair p = make_nf4(sh.OC, sh.C, dq, 90 + sh.C);
      auto x = rnd(static_cast<size_t>(sh.C), 91, -2, 2), bias = rnd(sh.OC, 92);
      std::vector<float> ref(static_cast<size_t>(sh.OC)), g3(ref.size(), std::nanf("")), g4(ref.size(), std::nanf(""));
      qt::cpu::matmul_forward(ref.data(), x.data(), p.w, bias.data(), 1, sh.C, sh.OC);
      qt::kern::GemvArgs a;
      a.x = x.data();
      a.bias = bias.data();
      a.w = nf4_args(p.w);
      a.N = 1;
      a.C = sh.C;
      a.OC = sh.OC;
      a.out = g3.data();
      run_gemv3(a, sh.blocks);
      for (int rw : {1, 2, 4}) {
        std::fill(g4.begin(), g4.end(), std::nanf(""));
        a.out = g4.data();
        if (rw == 1) run_gemv4<1, 8>(a, sh.blocks);
        else if (rw == 2) run_gemv4<2, 4>(a, sh.blocks);
        else run_gemv4<4, 2>(a, sh.blocks);
        const double e = rel_l2(ref, g4);
        CHECK_MSG(e <= 1e-5, "OC=" << sh.OC << " C=" << sh.C << " dq=" << dq << " rows/warp=" << rw << ": rel L2 " << e);
        // the same products in the same order as nf4_gemv3: the same bits
        CHECK_MSG(std::memcmp(g3.data(), g4.data(), g3.size() * 4) == 0,
                  "OC=" << sh.OC << " C=" << sh.C << " rows/warp=" << rw << ": gemv4 != gemv3");
      }
      // nf4_gemv6 (nf4_gemv4 with the table offsets formed 4 codes at a time): the same bits as well
      for (int rw : {1, 2}) {
        std::fill(g4.begin(), g4.end(), std::nanf(""));
        a.out = g4.data();
        if (rw == 1) run_gemv4<1, 8, qt::kern::kLutOffset>(a, sh.blocks);
        else run_gemv4<2, 4, qt::kern::kLutOffset>(a, sh.blocks);
        CHECK_MSG(std::memcmp(g3.data(), g4.data(), g3.size() * 4) == 0,
                  "OC=" << sh.OC << " C=" << sh.C << " rows/warp=" << rw << ": gemv6 != gemv3");
      }
      // nf4_gemv7 (the fp16 pair table): the products of fp16-rounded code values, in gemv3's order. Against the CPU
      // product of weights whose code values are fp16-rounded the same way: equal up to the fp32 rounding of the two
      // sums' different groupings; against the exact CPU product: within fp16's rounding of the code values.
      {
        std::vector<float> g7(ref.size(), std::nanf("")), g7b(ref.size(), std::nanf(""));
        a.out = g7.data();
        run_gemv4<2, 4, qt::kern::kLutPairF16>(a, sh.blocks);
        a.out = g7b.data();
        run_gemv4<1, 8, qt::kern::kLutPairF16>(a, sh.blocks);
        const double e = rel_l2(ref, g7);
        CHECK_MSG(e <= 1e-3 && e > 0, "OC=" << sh.OC << " C=" << sh.C << " dq=" << dq << ": gemv7 rel L2 " << e);
        CHECK_MSG(std::memcmp(g7.data(), g7b.data(), g7.size() * 4) == 0, "gemv7 depends on its rows per warp");
        // the fp16-rounded reference, computed here: sum over chunks of (sum_j f16(code) x_j) * absmax, as the kernel
        std::vector<float> r16(ref.size());
        std::vector<float> deq(static_cast<size_t>(sh.OC) * sh.C);
        qt::cpu::dequantize(deq.data(), p.w);
        for (int o = 0; o < sh.OC; o++) {
          double acc = 0;
          for (int j = 0; j < sh.C; j++) {
            const size_t idx = static_cast<size_t>(o) * sh.C + j;
            const uint8_t byte = static_cast<const uint8_t*>(p.w.data)[idx / 2];
            const int code = idx % 2 == 0 ? byte >> 4 : byte & 15;
            const float cv = qt::kern::f16_value(qt::kern::f16_bits(qt::kNf4Codes[code]));
            // this block's absmax, recovered from the CPU's dequantized weight (the zero code carries none: cv = 0)
            const double am = qt::kNf4Codes[code] != 0.0f ? static_cast<double>(deq[idx]) / qt::kNf4Codes[code] : 0.0;
            acc += static_cast<double>(cv) * am * x[static_cast<size_t>(j)];
          }
          r16[static_cast<size_t>(o)] = static_cast<float>(acc + bias[static_cast<size_t>(o)]);
        }
        const double e16 = rel_l2(r16, g7);
        CHECK_MSG(e16 <= 2e-6, "OC=" << sh.OC << " C=" << sh.C << ": gemv7 vs the fp16-code reference rel L2 " << e16);
      }
    }
  CHECK(qt::kern::gemv4_xs_floats(320) == 1024 && qt::kern::gemv4_xs_floats(1024) == 1024 && qt::kern::gemv4_xs_floats(1056) == 2048);
  CHECK(qt::kern::gemv4_smem_bytes(14336) == (qt::kern::kNf4TabSize + 14336) * 4);
}

// nf4_gemv4 with segments (one launch for a layer's q/k/v or gate/up): each weight's output is the one it gets alone
TEST(sim_nf4_gemv4_segments_equal_one_launch_per_weight) {
  for (int C : {320, 1536})
    for (int blocks : {1, 3}) {
      const int ocs[3] = {37, 9, 20};  // odd: each weight's last row group is partial
      std::vector<Nf4Pair> ps;
      for (int i = 0; i < 3; i++) ps.push_back(make_nf4(ocs[i], C, i != 2, 120 + i + C));
      auto x = rnd(static_cast<size_t>(C), 125, -2, 2), bias = rnd(9, 126);
      std::vector<std::vector<float>> alone(3), together(3);
      qt::kern::GemvArgs a;
      a.x = x.data();
      a.N = 1;
      a.C = C;
      for (int i = 0; i < 3; i++) {
        alone[i].assign(static_cast<size_t>(ocs[i]), std::nanf(""));
        together[i].assign(static_cast<size_t>(ocs[i]), std::nanf(""));
        qt::kern::GemvArgs one = a;
        one.out = alone[i].data();
        one.bias = i == 1 ? bias.data() : nullptr;
        one.w = nf4_args(ps[static_cast<size_t>(i)].w);
        one.OC = ocs[i];
        run_gemv3(one, blocks);
        a.seg[i].out = together[i].data();
        a.seg[i].bias = one.bias;
        a.seg[i].w = one.w;
        a.seg[i].OC = ocs[i];
      }
      for (int rw : {1, 2}) {
        for (auto& t : together) std::fill(t.begin(), t.end(), std::nanf(""));
        a.nseg = 3;
        if (rw == 1) run_gemv4<1, 8>(a, blocks);
        else run_gemv4<2, 4, qt::kern::kLutOffset>(a, blocks);  // and nf4_gemv6's lookups
        for (int i = 0; i < 3; i++)
          CHECK_MSG(std::memcmp(alone[i].data(), together[i].data(), alone[i].size() * 4) == 0,
                    "C=" << C << " blocks=" << blocks << " rows/warp=" << rw << " weight " << i);
      }
      a.nseg = 2;  // two weights (gate/up)
      for (auto& t : together) std::fill(t.begin(), t.end(), std::nanf(""));
      run_gemv4<2, 4>(a, blocks);
      CHECK(std::memcmp(alone[0].data(), together[0].data(), alone[0].size() * 4) == 0);
      CHECK(std::memcmp(alone[1].data(), together[1].data(), alone[1].size() * 4) == 0);
      CHECK(std::isnan(together[2][0]));  // the third is not written
    }
}

TEST(sim_nf4_gemv3_matches_cpu_matmul) {
  struct Shape {
    int OC, C, blocks;
  };
  // 37 rows = 10 groups of 4 (the last partial): one block of 8 warps strides over them; 10 chunks per row (< 32
  // lanes); 320 chunks = 5 steps of 64 with a partial last one; a Llama down_proj row (448 chunks) on 2 blocks
  for (Shape sh : {Shape{37, 320, 1}, Shape{37, 320, 3}, Shape{9, 4096, 1}, Shape{6, 14336, 2}})
    for (bool dq : {true, false})
      for (int N : {1, 2, 3, 4}) {
        if (sh.C > 4096 && N > 1) continue;  // the long row once is enough (simulation time)
        Nf4Pair p = make_nf4(sh.OC, sh.C, dq, 50 + N + sh.C);
        auto x = rnd(static_cast<size_t>(N) * sh.C, 60 + N, -2, 2), bias = rnd(sh.OC, 70 + N);
        for (bool with_bias : {false, true}) {
          std::vector<float> ref(static_cast<size_t>(N) * sh.OC), got(ref.size(), std::nanf(""));
          qt::cpu::matmul_forward(ref.data(), x.data(), p.w, with_bias ? bias.data() : nullptr, N, sh.C, sh.OC);
          qt::kern::GemvArgs a;
          a.out = got.data();
          a.x = x.data();
          a.bias = with_bias ? bias.data() : nullptr;
          a.w = nf4_args(p.w);
          a.N = N;
          a.C = sh.C;
          a.OC = sh.OC;
          run_gemv3(a, sh.blocks);
          const double e = rel_l2(ref, got);
          CHECK_MSG(e <= 1e-5, "OC=" << sh.OC << " C=" << sh.C << " blocks=" << sh.blocks << " N=" << N << " dq=" << dq
                                     << " bias=" << with_bias << ": rel L2 " << e);
          // deterministic: the same bits on another grid (the order of a row's sum does not depend on the grid)
          std::vector<float> again(ref.size(), std::nanf(""));
          a.out = again.data();
          run_gemv3(a, sh.blocks + 4);
          CHECK(std::memcmp(got.data(), again.data(), got.size() * 4) == 0);
        }
      }
}

namespace {

// The rows kernel's arguments (eps 1e-5, as the tests' CPU references).
qt::kern::RmsArgs rms_args(float* out, float* rstd, const float* inp, const float* weight, int C) {
  qt::kern::RmsArgs a;
  a.out = out;
  a.rstd = rstd;
  a.inp = inp;
  a.weight = weight;
  a.C = C;
  a.eps = 1e-5f;
  return a;
}

}  // namespace

TEST(sim_rmsnorm_rows_matches_cpu) {
  struct Shape {
    int N, C;
  };
  for (Shape sh : {Shape{1, 4096}, Shape{3, 96}, Shape{2, 8192}, Shape{1, 16384}, Shape{2, 100}}) {
    CHECK(qt::kern::rms_rows_applies(sh.C));
    const size_t n = static_cast<size_t>(sh.N) * sh.C;
    auto x = rnd(n, 80 + sh.C, -2, 2), w = rnd(static_cast<size_t>(sh.C), 81, 0.5f, 1.5f);
    std::vector<float> out_c(n), rstd_c(static_cast<size_t>(sh.N));
    qt::cpu::rmsnorm_forward(out_c.data(), rstd_c.data(), x.data(), w.data(), sh.N, sh.C, 1e-5f);
    std::vector<float> out_s(n, std::nanf("")), rstd_s(static_cast<size_t>(sh.N), std::nanf(""));
    const qt::kern::RmsArgs a = rms_args(out_s.data(), rstd_s.data(), x.data(), w.data(), sh.C);
    const int threads = qt::kern::rms_rows_threads(sh.C);
    CHECK(threads % 32 == 0 && threads <= 1024 && sh.C <= 16 * threads);
    warpsim::launch({sh.N, 1, 1}, threads, qt::kern::kRmsSmem, [&](warpsim::Ctx& c) { qt::kern::rmsnorm_rows(c, a); });
    CHECK_MSG(rel_l2(out_c, out_s) <= 1e-6, "N=" << sh.N << " C=" << sh.C << ": out rel L2 " << rel_l2(out_c, out_s));
    CHECK_MSG(rel_l2(rstd_c, rstd_s) <= 1e-6, "N=" << sh.N << " C=" << sh.C << ": rstd rel L2 " << rel_l2(rstd_c, rstd_s));
  }
  CHECK(!qt::kern::rms_rows_applies(16388) && !qt::kern::rms_rows_applies(98) && qt::kern::rms_rows_applies(16384));
}

TEST(sim_add_rmsnorm_rows_equals_add_then_rmsnorm_rows) {
  // add_rmsnorm_forward's rows kernel (the decode path) against the two launches it replaces, the add (cpu/elementwise:
  // the same single rounding as the add kernel's __fadd_rn) and then rmsnorm_rows on its result: x_out, out and rstd
  // bit for bit, with x_out separate or in place on either addend; and out against the CPU RMSNorm as above.
  struct Shape {
    int N, C;
  };
  for (Shape sh : {Shape{1, 4096}, Shape{3, 96}, Shape{2, 8192}, Shape{1, 16384}, Shape{2, 100}}) {
    const size_t n = static_cast<size_t>(sh.N) * sh.C;
    const int threads = qt::kern::rms_rows_threads(sh.C);
    const auto xa = rnd(n, 90 + sh.C, -2, 2), xb = rnd(n, 91, -2, 2), w = rnd(static_cast<size_t>(sh.C), 92, 0.5f, 1.5f);
    std::vector<float> sum(n), out_r(n, std::nanf("")), rstd_r(static_cast<size_t>(sh.N), std::nanf(""));
    qt::cpu::add(sum.data(), xa.data(), xb.data(), n);
    const qt::kern::RmsArgs a = rms_args(out_r.data(), rstd_r.data(), sum.data(), w.data(), sh.C);
    warpsim::launch({sh.N, 1, 1}, threads, qt::kern::kRmsSmem, [&](warpsim::Ctx& c) { qt::kern::rmsnorm_rows(c, a); });
    std::vector<float> out_c(n), rstd_c(static_cast<size_t>(sh.N));
    qt::cpu::rmsnorm_forward(out_c.data(), rstd_c.data(), sum.data(), w.data(), sh.N, sh.C, 1e-5f);
    for (int alias = 0; alias < 3; alias++) {  // x_out: separate, == xa, == xb
      std::vector<float> pa = xa, pb = xb, sep(n, std::nanf("")), out_f(n, std::nanf("")), rstd_f(static_cast<size_t>(sh.N), std::nanf(""));
      float* x_out = alias == 0 ? sep.data() : alias == 1 ? pa.data() : pb.data();
      qt::kern::RmsArgs f = a;
      f.out = out_f.data();
      f.rstd = rstd_f.data();
      f.inp = nullptr;  // unused by the fused kernel
      warpsim::launch({sh.N, 1, 1}, threads, qt::kern::kRmsSmem,
                      [&](warpsim::Ctx& c) { qt::kern::add_rmsnorm_rows(c, f, x_out, pa.data(), pb.data()); });
      const std::string tag = "N=" + std::to_string(sh.N) + " C=" + std::to_string(sh.C) + " alias " + std::to_string(alias);
      CHECK_MSG(std::memcmp(x_out, sum.data(), n * 4) == 0, tag << ": x_out is not the add's bits");
      CHECK_MSG(std::memcmp(out_f.data(), out_r.data(), n * 4) == 0, tag << ": out is not rmsnorm_rows' bits");
      CHECK_MSG(std::memcmp(rstd_f.data(), rstd_r.data(), rstd_r.size() * 4) == 0, tag << ": rstd is not rmsnorm_rows' bits");
      CHECK_MSG(rel_l2(out_c, out_f) <= 1e-6 && rel_l2(rstd_c, rstd_f) <= 1e-6, tag << ": out rel L2 " << rel_l2(out_c, out_f));
    }
  }
}

namespace {

template <int HSP>
void run_decode(const qt::kern::DecodeAttnArgs& a) {
  using namespace qt::kern;
  warpsim::launch({a.S, a.NH, a.B}, kDecThreads, attn_decode_smem(HSP), [&](warpsim::Ctx& c) { attn_decode<HSP>(c, a); });
  if (a.S > 1) warpsim::launch({a.NH, a.B, 1}, HSP + 32, 0, [&](warpsim::Ctx& c) { attn_decode_combine<HSP>(c, a); });
}

}  // namespace

TEST(sim_attention_decode_matches_cpu) {
  struct Case {
    const char* name;
    int B, Tk, NH, NKV, HS;
    std::vector<int32_t> lengths;
  };
  for (const Case& k : std::vector<Case>{{"Llama GQA 8/2 HS=128 Tk=130 (5 splits)", 1, 130, 8, 2, 128, {}},
                                         {"MQA 4/1 HS=64, lengths 33/10 (an empty split)", 2, 33, 4, 1, 64, {33, 10}},
                                         {"Tk=1 HS=8 (padded to 32)", 1, 1, 2, 2, 8, {}},
                                         {"an empty row, Tk=20", 2, 20, 2, 1, 16, {0, 20}},
                                         {"MHA HS=100 Tk=300", 1, 300, 3, 3, 100, {}},
                                         {"Tk=32 exactly one split", 1, 32, 4, 2, 128, {}}}) {
    const size_t nq = static_cast<size_t>(k.B) * k.NH * k.HS, nk = static_cast<size_t>(k.B) * k.Tk * k.NKV * k.HS;
    const size_t nl = static_cast<size_t>(k.B) * k.NH;
    auto q = rnd(nq, 90 + k.Tk, -2, 2), kk = rnd(nk, 91 + k.Tk, -2, 2), v = rnd(nk, 92 + k.Tk);
    const int32_t* len = k.lengths.empty() ? nullptr : k.lengths.data();
    std::vector<float> out_c(nq), lse_c(nl);
    qt::cpu::attention_forward(out_c.data(), lse_c.data(), q.data(), kk.data(), v.data(), len, k.B, 1, k.Tk, k.NH, k.NKV, k.HS);
    qt::kern::DecodeAttnArgs a;
    std::vector<float> out_s(nq, std::nanf("")), lse_s(nl, std::nanf(""));
    const int HSP = k.HS <= 32 ? 32 : k.HS <= 64 ? 64 : 128;
    a.S = qt::kern::attn_decode_splits(k.Tk);
    std::vector<float> part(static_cast<size_t>(k.B) * k.NH * a.S * (HSP + 2), std::nanf(""));
    a.out = out_s.data();
    a.lse = lse_s.data();
    a.part = part.data();
    a.q = q.data();
    a.k = kk.data();
    a.v = v.data();
    a.lengths = len;
    a.B = k.B;
    a.Tk = k.Tk;
    a.NH = k.NH;
    a.NKV = k.NKV;
    a.HS = k.HS;
    a.scale = 1.0f / std::sqrt(static_cast<float>(k.HS));
    if (HSP == 32) run_decode<32>(a);
    else if (HSP == 64) run_decode<64>(a);
    else run_decode<128>(a);
    bool same_inf = true;
    for (size_t i = 0; i < nl; i++) {
      if (std::isinf(lse_c[i]) != std::isinf(lse_s[i])) same_inf = false;
      if (std::isinf(lse_c[i]) && std::isinf(lse_s[i])) lse_c[i] = lse_s[i] = 0;
    }
    std::printf("    decode attention %-48s splits %d out %.2e lse %.2e\n", k.name, a.S, rel_l2(out_c, out_s), rel_l2(lse_c, lse_s));
    CHECK_MSG(same_inf, k.name << ": -inf lse rows differ");
    CHECK_MSG(rel_l2(out_c, out_s) <= 1e-5, k.name << ": out rel L2 " << rel_l2(out_c, out_s));
    CHECK_MSG(rel_l2(lse_c, lse_s) <= 1e-6, k.name << ": lse rel L2 " << rel_l2(lse_c, lse_s));
  }
}

namespace {

template <int RT>
void run_lora_backward_sim(const qt::kern::LoraArgs& a) {
  using namespace qt::kern;
  warpsim::launch({(a.C + kLoraDaThreads - 1) / kLoraDaThreads, a.S, 1}, kLoraDaThreads, lora_da_smem<RT>(),
                  [&](warpsim::Ctx& c) { lora_da_part<RT>(c, a); });
  warpsim::launch({3, 1, 1}, 64, 0, [&](warpsim::Ctx& c) { lora_da_sum(c, a); });
  if (a.dinp)
    warpsim::launch({(a.C + kLoraDxThreads - 1) / kLoraDxThreads, (a.N + kLoraDxRows - 1) / kLoraDxRows, 1}, kLoraDxThreads,
                    lora_dx_smem<RT>(), [&](warpsim::Ctx& c) { lora_dx<RT>(c, a); });
}

}  // namespace

TEST(sim_lora_fused_kernels_match_cpu) {
  struct Shape {
    int N, C, R;
  };
  for (float p : {0.0f, 0.1f})
    for (Shape sh : {Shape{10, 48, 8}, Shape{77, 200, 32}, Shape{300, 96, 64}, Shape{5, 40, 16}, Shape{513, 64, 33}}) {
      const int N = sh.N, C = sh.C, R = sh.R, OC = 24;
      const float scale = 0.25f;
      const uint64_t seed = 99 + static_cast<uint64_t>(N);
      auto x = rnd(static_cast<size_t>(N) * C, 1 + N), A = rnd(static_cast<size_t>(R) * C, 2 + N, -0.2f, 0.2f);
      auto Bw = rnd(static_cast<size_t>(OC) * R, 3 + N, -0.2f, 0.2f), dout = rnd(static_cast<size_t>(N) * OC, 4 + N);
      auto out0 = rnd(static_cast<size_t>(N) * OC, 5 + N), dx0 = rnd(static_cast<size_t>(N) * C, 6 + N);
      auto dA0 = rnd(static_cast<size_t>(R) * C, 7 + N), dB0 = rnd(static_cast<size_t>(OC) * R, 8 + N);
      std::vector<float> out = out0, u_c(static_cast<size_t>(N) * R), scratch(static_cast<size_t>(N) * (C + R));
      qt::cpu::lora_forward(out.data(), u_c.data(), scratch.data(), x.data(), A.data(), Bw.data(), scale, p, seed, N, C, OC, R);
      std::vector<float> dx_c = dx0, dA_c = dA0, dB_c = dB0;
      qt::cpu::lora_backward(dx_c.data(), dA_c.data(), dB_c.data(), scratch.data(), dout.data(), x.data(), u_c.data(), A.data(),
                             Bw.data(), scale, p, seed, N, C, OC, R);
      // du = scale * dout B, as the cuBLAS GEMM before the fused kernels computes it
      std::vector<float> du(static_cast<size_t>(N) * R);
      for (int n = 0; n < N; n++)
        for (int r = 0; r < R; r++) {
          double sum = 0;
          for (int o = 0; o < OC; o++) sum += static_cast<double>(dout[static_cast<size_t>(n) * OC + o]) * Bw[static_cast<size_t>(o) * R + r];
          du[static_cast<size_t>(n) * R + r] = static_cast<float>(scale * sum);
        }
      qt::kern::LoraArgs a = qt::kern::lora_args(x.data(), A.data(), p, seed, N, C, R);
      a.du = du.data();
      a.S = std::min(64, std::max(1, (N + 255) / 256));
      std::vector<float> u_s(u_c.size(), std::nanf("")), part(static_cast<size_t>(a.S) * R * C, std::nanf(""));
      std::vector<float> dA_s = dA0, dx_s = dx0;
      a.u = u_s.data();
      a.part = part.data();
      a.dA = dA_s.data();
      a.dinp = dx_s.data();
      warpsim::launch({(N + 63) / 64, (R + 31) / 32, 1}, qt::kern::kLoraThreads, qt::kern::kLoraXaSmem,
                      [&](warpsim::Ctx& c) { qt::kern::lora_xa(c, a); });
      if (R <= 8) run_lora_backward_sim<8>(a);
      else if (R <= 16) run_lora_backward_sim<16>(a);
      else if (R <= 32) run_lora_backward_sim<32>(a);
      else run_lora_backward_sim<64>(a);
      const std::string tag = "N=" + std::to_string(N) + " C=" + std::to_string(C) + " R=" + std::to_string(R) + " p=" + std::to_string(p);
      CHECK_MSG(rel_l2(u_c, u_s) <= 1e-5, tag << ": u rel L2 " << rel_l2(u_c, u_s));
      const double e_da = rel_l2(minus(dA_c, dA0), minus(dA_s, dA0)), e_dx = rel_l2(minus(dx_c, dx0), minus(dx_s, dx0));
      CHECK_MSG(e_da <= 1e-5, tag << ": dA increment rel L2 " << e_da);
      CHECK_MSG(e_dx <= 1e-5, tag << ": dinp increment rel L2 " << e_dx);
    }
}

namespace {

template <int RT>
void run_lora_xa_tc_sim(const qt::kern::LoraArgs& a) {
  using namespace qt::kern;
  warpsim::launch({(a.N + kLoraTcRows - 1) / kLoraTcRows, a.ks, 1}, kLoraTcThreads, lora_xa_tc_smem<RT>(),
                  [&](warpsim::Ctx& c) { lora_xa_tc<RT>(c, a); });
  if (a.ks > 1) warpsim::launch({3, 1, 1}, 64, 0, [&](warpsim::Ctx& c) { lora_xa_tc_sum(c, a); });
}

}  // namespace

TEST(sim_lora_xa_tc_matches_cpu) {
  struct Shape {
    int N, C, R;
  };
  for (Shape sh : {Shape{10, 48, 8}, Shape{77, 200, 32}, Shape{300, 96, 64}, Shape{5, 40, 16}, Shape{513, 64, 33},
                   Shape{37, 75, 24}, Shape{130, 4096, 32}})
    for (float p : {0.0f, 0.1f}) {
      const int N = sh.N, C = sh.C, R = sh.R, OC = 8;
      const uint64_t seed = 7 + static_cast<uint64_t>(N);
      auto x = rnd(static_cast<size_t>(N) * C, 11 + N), A = rnd(static_cast<size_t>(R) * C, 12 + N, -0.2f, 0.2f);
      auto Bw = rnd(static_cast<size_t>(OC) * R, 13 + N, -0.2f, 0.2f);
      std::vector<float> out(static_cast<size_t>(N) * OC, 0.0f), u_c(static_cast<size_t>(N) * R), xd(static_cast<size_t>(N) * C);
      qt::cpu::lora_forward(out.data(), u_c.data(), xd.data(), x.data(), A.data(), Bw.data(), 1.0f, p, seed, N, C, OC, R);
      // the same product with plain bf16 operands (one term), exact sums: what the split must beat
      std::vector<float> u_bf(u_c.size());
      for (int n = 0; n < N; n++)
        for (int r = 0; r < R; r++) {
          double sum = 0;
          for (int k = 0; k < C; k++) {
            const float xv = qt::kern::bf16_value(qt::kern::bf16_bits(xd[static_cast<size_t>(n) * C + k]));
            const float av = qt::kern::bf16_value(qt::kern::bf16_bits(A[static_cast<size_t>(r) * C + k]));
            sum += static_cast<double>(xv) * av;
          }
          u_bf[static_cast<size_t>(n) * R + r] = static_cast<float>(sum);
        }
      const double e_bf = rel_l2(u_c, u_bf);
      qt::kern::LoraArgs a = qt::kern::lora_args(x.data(), A.data(), p, seed, N, C, R);
      int ks = 1, kcols = 0;
      qt::kern::lora_xa_tc_split(N, C, ks, kcols);
      const int chunks = (C + qt::kern::kLoraTcK - 1) / qt::kern::kLoraTcK;
      CHECK(ks >= 1 && ks <= 16 && (ks - 1) * kcols < C && ks * kcols >= C && kcols % qt::kern::kLoraTcK == 0);
      // variant 0: the rule's slices, float4 loads where aligned; variant 1: the other case (one slice if the rule
      // slices C, else a slice per chunk) with scalar loads
      for (int v = 0; v < 2; v++) {
        if (v == 0) {
          a.ks = ks;
          a.kcols = kcols;
        } else {
          a.kcols = ks > 1 ? chunks * qt::kern::kLoraTcK : qt::kern::kLoraTcK;
          a.ks = (C + a.kcols - 1) / a.kcols;
        }
        const bool vec = v == 0 && C % 4 == 0;
        a.xvec = vec && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
        a.avec = vec && reinterpret_cast<uintptr_t>(a.A) % 16 == 0;
        std::vector<float> u_s(u_c.size(), std::nanf("")), part(static_cast<size_t>(a.ks) * N * R, std::nanf(""));
        a.u = u_s.data();
        a.part = a.ks > 1 ? part.data() : nullptr;
        if (R <= 8) run_lora_xa_tc_sim<8>(a);
        else if (R <= 16) run_lora_xa_tc_sim<16>(a);
        else if (R <= 32) run_lora_xa_tc_sim<32>(a);
        else run_lora_xa_tc_sim<64>(a);
        const double e = rel_l2(u_c, u_s);
        std::printf("    lora_xa_tc N=%-4d C=%-4d R=%-2d p=%.1f ks=%-2d %s: rel L2 %.2e (plain bf16 %.2e)\n", N, C, R, p, a.ks,
                    a.xvec ? "float4" : "scalar", e, e_bf);
        const std::string tag = "N=" + std::to_string(N) + " C=" + std::to_string(C) + " R=" + std::to_string(R) +
                                " p=" + std::to_string(p) + " ks=" + std::to_string(a.ks);
        CHECK_MSG(e <= 2e-5, tag << ": u rel L2 " << e);
        CHECK_MSG(e * 20 <= e_bf, tag << ": u rel L2 " << e << " not 20x below plain bf16's " << e_bf);
      }
    }
}
