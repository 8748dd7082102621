// The whole tiny model: LoRA gradients against finite differences (Llama and Qwen2-bias flavours, fp32 and
// NF4 bases, with and without gradient checkpointing, dropout and NEFTune on), padding invariance, and
// KV-cached decoding against full recomputation.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "cpu/ops.h"
#include "fixtures.h"
#include "gradcheck.h"
#include "inference.h"
#include "model.h"

using namespace qtest;

namespace {

struct Tiny {
  TempDir dir;
  std::shared_ptr<qt::Model> model;
  std::shared_ptr<qt::Adapter> adapter;

  Tiny(const TinySpec& spec, qt::Quant quant, float dropout, int r = 4,
       std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    write_tiny_model(dir / "m", spec);
    qt::LoadOptions o;
    o.folder = dir / "m";
    o.quant = quant;
    model = qt::load_model(o);
    qt::LoraConfig lc;
    lc.r = r;
    lc.alpha = 8.0f;
    lc.dropout = dropout;
    lc.targets = std::move(targets);
    adapter = qt::create_adapter(model, lc);
    // B starts at zero (PEFT); give it values so that A's gradients are not zero either
    float* p = adapter->params.as<float>();
    for (auto& layer : adapter->layout.slots)
      for (auto& s : layer)
        if (s.on)
          for (size_t i = 0; i < static_cast<size_t>(s.out) * lc.r; i++) p[s.b + i] = 0.3f * (2 * qt::rng_uniform(77, s.b + i) - 1);
  }
};

// A batch of 2 rows (lengths 7 and 4, padded to 7) with some untrained prompt tokens.
struct Batch {
  int B = 2, T = 7;
  std::vector<int32_t> ids, targets, lengths{7, 4};
  int count = 0;
  explicit Batch(int vocab) {
    ids.assign(static_cast<size_t>(B * T), 0);
    targets.assign(static_cast<size_t>(B * T), -1);
    for (int b = 0; b < B; b++)
      for (int t = 0; t < lengths[static_cast<size_t>(b)]; t++) ids[static_cast<size_t>(b * T + t)] = (b * 131 + t * 37 + 5) % vocab;
    for (int b = 0; b < B; b++)  // position t predicts token t + 1; position 0 is an untrained prompt token
      for (int t = 1; t + 1 < lengths[static_cast<size_t>(b)]; t++) {
        targets[static_cast<size_t>(b * T + t)] = ids[static_cast<size_t>(b * T + t + 1)];
        count++;
      }
  }
};

double run_loss(const qt::Model& m, const qt::Adapter* ad, qt::Activations& a, const Batch& b, float* dparams, bool training) {
  m.be->upload(a.ids, b.ids.data(), b.ids.size() * 4);
  m.be->upload(a.targets, b.targets.data(), b.targets.size() * 4);
  m.be->upload(a.lengths, b.lengths.data(), b.lengths.size() * 4);
  qt::Pass p;
  p.B = b.B;
  p.T = b.T;
  p.use_lengths = true;
  p.training = training;
  p.neftune_alpha = training ? 5.0f : 0.0f;
  p.seed = 4242;
  qt::model_forward(m, ad, a, p, nullptr);
  return qt::model_loss(m, ad, a, p, dparams, 1.0f / static_cast<float>(b.count), nullptr) / b.count;
}

// Gradients of the mean loss w.r.t. all LoRA params, then finite-difference checks: the 12 largest entries of
// A and of B one by one, and the directional derivative along the gradient and along random directions.
std::vector<float> check_model_grads(Tiny& t, bool checkpointing) {
  const qt::Model& m = *t.model;
  qt::Adapter& ad = *t.adapter;
  Batch b(m.config.vocab_size);
  qt::Activations a;
  qt::alloc_activations(a, m, checkpointing ? qt::ActMode::TrainCheckpointed : qt::ActMode::Train, b.B * b.T, ad.config.r);
  const size_t P = ad.layout.num_params;
  std::vector<float> grad(P, 0.0f);
  run_loss(m, &ad, a, b, grad.data(), true);
  float* theta = ad.params.as<float>();
  auto loss = [&] { return run_loss(m, &ad, a, b, nullptr, true); };

  std::vector<size_t> a_idx, b_idx;
  for (auto& layer : ad.layout.slots)
    for (auto& s : layer)
      if (s.on) {
        for (size_t i = 0; i < static_cast<size_t>(ad.config.r * s.in); i++) a_idx.push_back(s.a + i);
        for (size_t i = 0; i < static_cast<size_t>(ad.config.r * s.out); i++) b_idx.push_back(s.b + i);
      }
  for (auto* idx : {&a_idx, &b_idx}) {
    std::sort(idx->begin(), idx->end(), [&](size_t x, size_t y) { return std::fabs(grad[x]) > std::fabs(grad[y]); });
    CHECK(std::fabs(grad[(*idx)[0]]) > 1e-4);  // the gradients are not trivially zero
    std::vector<size_t> top(idx->begin(), idx->begin() + 12);
    grad_check(idx == &a_idx ? "model dA" : "model dB", theta, grad, loss, 2e-2f, 2e-2, 2e-5, top);
  }
  // directional derivatives: d = gradient direction, and random directions (restricted to A, then to B)
  std::vector<std::vector<float>> dirs;
  dirs.push_back(grad);
  for (int k = 0; k < 2; k++)
    for (auto* idx : {&a_idx, &b_idx}) {
      std::vector<float> d(P, 0.0f);
      for (size_t i : *idx) d[i] = 2 * qt::rng_uniform(900 + k, i) - 1;
      dirs.push_back(d);
    }
  for (auto& d : dirs) {
    double norm = 0, analytic = 0;
    for (size_t i = 0; i < P; i++) norm += static_cast<double>(d[i]) * d[i];
    norm = std::sqrt(norm);
    for (size_t i = 0; i < P; i++) analytic += grad[i] * d[i] / norm;
    const double eps = 2e-2;
    std::vector<float> saved(theta, theta + P);
    for (size_t i = 0; i < P; i++) theta[i] = saved[i] + static_cast<float>(eps * d[i] / norm);
    const double lp = loss();
    for (size_t i = 0; i < P; i++) theta[i] = saved[i] - static_cast<float>(eps * d[i] / norm);
    const double lm = loss();
    std::copy(saved.begin(), saved.end(), theta);
    const double numeric = (lp - lm) / (2 * eps);
    CHECK_MSG(std::fabs(numeric - analytic) <= 2e-5 + 2e-2 * std::fabs(analytic),
              "directional derivative: analytic " << analytic << " numeric " << numeric);
  }
  return grad;
}

TinySpec qwen_spec() {
  TinySpec s;
  s.arch = "Qwen2ForCausalLM";
  s.tied = true;
  s.seed = 5;
  return s;
}

}  // namespace

TEST(model_grad_llama_fp32_base) {
  Tiny t(TinySpec{}, qt::Quant::None, 0.1f);
  check_model_grads(t, false);
}

TEST(model_grad_llama_checkpointing_identical) {
  // with recomputation the gradients are bit-identical to storing every activation
  Tiny t(TinySpec{}, qt::Quant::None, 0.1f);
  auto g1 = check_model_grads(t, true);
  Batch b(t.model->config.vocab_size);
  qt::Activations a;
  qt::alloc_activations(a, *t.model, qt::ActMode::Train, b.B * b.T, t.adapter->config.r);
  std::vector<float> g2(g1.size(), 0.0f);
  run_loss(*t.model, t.adapter.get(), a, b, g2.data(), true);
  CHECK(g1 == g2);
}

namespace {
int g_swiglu_calls = 0;
void counting_swiglu(float* out, const float* gate, const float* up, size_t n) {
  g_swiglu_calls++;
  qt::cpu::swiglu_forward(out, gate, up, n);
}
}  // namespace

TEST(model_checkpointing_recomputes_swiglu_only_for_a_down_proj_lora) {
  // The recomputation skips SwiGLU (h = down_proj's input) when down_proj has no LoRA: the tutorial's q/k/v/o targets.
  // Gradients stay bit-identical to storing every activation either way; SwiGLU runs once per layer in the forward,
  // and once more per layer in the recomputation only when down_proj has a LoRA.
  for (bool down : {false, true}) {
    std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
    if (down) targets.push_back("down_proj");
    Tiny t(TinySpec{}, qt::Quant::None, 0.1f, 4, targets);
    const int L = t.model->config.num_layers;
    qt::Backend counting = qt::cpu_backend();
    counting.swiglu_forward = counting_swiglu;
    const qt::Backend* cpu = t.model->be;
    t.model->be = &counting;
    Batch b(t.model->config.vocab_size);
    std::vector<int> calls;
    std::vector<std::vector<float>> grads;
    for (qt::ActMode mode : {qt::ActMode::Train, qt::ActMode::TrainCheckpointed}) {
      qt::Activations a;
      qt::alloc_activations(a, *t.model, mode, b.B * b.T, t.adapter->config.r);
      std::vector<float> g(t.adapter->layout.num_params, 0.0f);
      g_swiglu_calls = 0;
      run_loss(*t.model, t.adapter.get(), a, b, g.data(), true);
      calls.push_back(g_swiglu_calls);
      grads.push_back(g);
    }
    t.model->be = cpu;
    CHECK_EQ(calls[0], L);
    CHECK_EQ(calls[1], down ? 2 * L : L);
    CHECK(grads[0] == grads[1]);
  }
}

TEST(model_bf16_checkpoints_keep_the_loss_and_close_gradients) {
  // bf16 layer-input checkpoints (the GPU default for bf16 compute; QT_CKPT_BF16=1 forces them here): the forward
  // pass is untouched (same loss, bit for bit), the recomputation starts from rounded inputs (gradients within
  // bf16 rounding), and the checkpoints take half the memory.
  TinySpec spec;
  spec.layers = 4;  // L + 1 fp32 buffers against 2 fp32 + L bf16 ones
  Tiny t(spec, qt::Quant::None, 0.1f);
  Batch b(t.model->config.vocab_size);
  qt::Activations a32, a16;
  qt::alloc_activations(a32, *t.model, qt::ActMode::TrainCheckpointed, b.B * b.T, t.adapter->config.r);
  setenv("QT_CKPT_BF16", "1", 1);
  qt::alloc_activations(a16, *t.model, qt::ActMode::TrainCheckpointed, b.B * b.T, t.adapter->config.r);
  unsetenv("QT_CKPT_BF16");
  CHECK(!a32.ckpt_bf16 && a16.ckpt_bf16);
  CHECK(a16.mem.size() < a32.mem.size());
  std::vector<float> g32(t.adapter->layout.num_params, 0.0f), g16(g32.size(), 0.0f);
  const double l32 = run_loss(*t.model, t.adapter.get(), a32, b, g32.data(), true);
  const double l16 = run_loss(*t.model, t.adapter.get(), a16, b, g16.data(), true);
  CHECK_EQ(l32, l16);
  double dot = 0, n32 = 0, n16 = 0, diff = 0;
  for (size_t i = 0; i < g32.size(); i++) {
    dot += static_cast<double>(g32[i]) * g16[i];
    n32 += static_cast<double>(g32[i]) * g32[i];
    n16 += static_cast<double>(g16[i]) * g16[i];
    diff += (static_cast<double>(g32[i]) - g16[i]) * (static_cast<double>(g32[i]) - g16[i]);
  }
  CHECK(diff > 0);  // the checkpoints really are rounded
  CHECK_MSG(std::sqrt(diff / n32) < 2e-2, "gradient rel L2 " << std::sqrt(diff / n32));
  CHECK_MSG(dot / std::sqrt(n32 * n16) > 0.999, "gradient cosine " << dot / std::sqrt(n32 * n16));
}

namespace {

// The model as if it computed in bf16 (what the CPU ignores everywhere but in choosing the bf16 MLP path).
void set_compute(qt::Model& m, qt::DType t) {
  m.compute = t;
  for (auto& lw : m.layers)
    for (auto& w : lw.lin) w.compute = t;
}

struct Grads {
  double loss;
  std::vector<float> g;
};

Grads grads_of(const Tiny& t, const Batch& b, qt::ActMode mode, bool* mlp_bf16, bool mlp_lora = true, size_t* bytes = nullptr) {
  qt::Activations a;
  qt::alloc_activations(a, *t.model, mode, b.B * b.T, t.adapter->config.r, 0, mlp_lora);
  if (mlp_bf16) *mlp_bf16 = a.mlp_bf16;
  if (bytes) *bytes = a.mem.size();
  CHECK(a.mlp_half == (a.mlp_bf16 && !mlp_lora));
  Grads r{0, std::vector<float>(t.adapter->layout.num_params, 0.0f)};
  r.loss = run_loss(*t.model, t.adapter.get(), a, b, r.g.data(), true);
  return r;
}

double rel_l2(const std::vector<float>& ref, const std::vector<float>& got) {
  double d = 0, n = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    d += (static_cast<double>(ref[i]) - got[i]) * (static_cast<double>(ref[i]) - got[i]);
    n += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(d / n);
}

}  // namespace

TEST(model_bf16_mlp_keeps_gradients_close_and_recomputes_exactly) {
  // The tutorial's adapter (q/k/v/o) on a model computing in bf16: the MLP keeps gate, up, h and their gradients in
  // bf16 (model.cpp mlp_in_bf16). Checkpointed recomputation reproduces the forward bit for bit; the loss and the
  // gradients stay within bf16 rounding of the fp32 path; QT_MLP_BF16=0 and a LoRA on down_proj keep the fp32 path.
  TinySpec spec;
  spec.layers = 3;
  Tiny t(spec, qt::Quant::None, 0.1f, 4, {"q_proj", "k_proj", "v_proj", "o_proj"});
  Batch b(t.model->config.vocab_size);
  bool on = true;
  const Grads f32 = grads_of(t, b, qt::ActMode::TrainCheckpointed, &on);
  CHECK(!on);  // the CPU computes in fp32
  set_compute(*t.model, qt::DType::BF16);
  bool on_c = false, on_t = false, on_off = true;
  const Grads ck = grads_of(t, b, qt::ActMode::TrainCheckpointed, &on_c);
  const Grads tr = grads_of(t, b, qt::ActMode::Train, &on_t);
  setenv("QT_MLP_BF16", "0", 1);
  const Grads off = grads_of(t, b, qt::ActMode::TrainCheckpointed, &on_off);
  unsetenv("QT_MLP_BF16");
  set_compute(*t.model, qt::DType::F32);
  CHECK(on_c && on_t && !on_off);
  CHECK_EQ(ck.loss, tr.loss);
  CHECK(ck.g == tr.g);
  // told that the adapter has no MLP LoRA, the MLP buffers are sized for bf16: less memory, the same bits
  set_compute(*t.model, qt::DType::BF16);
  size_t full = 0, half = 0;
  const Grads ck_full = grads_of(t, b, qt::ActMode::TrainCheckpointed, nullptr, true, &full);
  const Grads ck_half = grads_of(t, b, qt::ActMode::TrainCheckpointed, nullptr, false, &half);
  CHECK(half < full);
  CHECK(ck_half.loss == ck_full.loss && ck_half.g == ck_full.g);
  {  // an adapter with an MLP LoRA cannot run on them (it would need fp32 intermediates): an error, not corruption
    Tiny dm(spec, qt::Quant::None, 0.1f, 4, {"q_proj", "up_proj"});
    set_compute(*dm.model, qt::DType::BF16);
    qt::Activations a;
    qt::alloc_activations(a, *dm.model, qt::ActMode::TrainCheckpointed, b.B * b.T, 4, 0, /*mlp_lora=*/false);
    std::vector<float> g(dm.adapter->layout.num_params, 0.0f);
    bool threw = false;
    try {
      run_loss(*dm.model, dm.adapter.get(), a, b, g.data(), true);
    } catch (const qt::Error& e) {
      threw = e.code() == qt::ErrorCode::Internal;
    }
    CHECK(threw);
  }
  set_compute(*t.model, qt::DType::F32);
  CHECK(off.loss == f32.loss && off.g == f32.g);
  CHECK(ck.g != f32.g);  // really rounded
  CHECK_MSG(std::fabs(ck.loss - f32.loss) < 1e-2 * std::fabs(f32.loss), "loss " << ck.loss << " vs " << f32.loss);
  CHECK_MSG(rel_l2(f32.g, ck.g) < 3e-2, "gradient rel L2 " << rel_l2(f32.g, ck.g));

  Tiny d(spec, qt::Quant::None, 0.1f, 4, {"q_proj", "down_proj"});
  const Grads d32 = grads_of(d, b, qt::ActMode::TrainCheckpointed, nullptr);
  set_compute(*d.model, qt::DType::BF16);
  const Grads d16 = grads_of(d, b, qt::ActMode::TrainCheckpointed, nullptr);
  set_compute(*d.model, qt::DType::F32);
  CHECK(d16.loss == d32.loss && d16.g == d32.g);  // a LoRA on the MLP: its fp32 path
}

namespace {

// A CPU backend that claims to keep converted weights (as the GPU does) and records the calls; it can cancel the
// pass after a given number of them.
std::vector<std::pair<void*, size_t>> g_keep_calls;
std::atomic<bool>* g_keep_cancel = nullptr;
size_t g_keep_cancel_after = 0;
bool recording_keep_weights(void* mem, size_t bytes) {
  g_keep_calls.push_back({mem, bytes});
  if (g_keep_cancel && mem && g_keep_calls.size() >= g_keep_cancel_after) g_keep_cancel->store(true);
  return true;
}

}  // namespace

TEST(model_keeps_converted_weights_per_layer_in_backward) {
  // On a backend that converts weights for its GEMMs, a checkpointed NF4 model's activations get room for the six
  // weights a layer's recomputation converts (not down_proj: the recomputation skips it), keep_weights is called
  // before each layer's recomputation and stopped once after the last layer, also when the pass is cancelled midway;
  // QT_DEQUANT_REUSE=0 turns it off. The gradients do not change (these CPU ops ignore the calls; gpu_check compares
  // the GPU's own steps with and without it bit for bit).
  TinySpec spec;
  spec.layers = 3;
  Tiny t(spec, qt::Quant::NF4, 0.1f);
  qt::Backend keeping = qt::cpu_backend();
  keeping.keep_weights = recording_keep_weights;
  const qt::Backend* cpu = t.model->be;
  t.model->be = &keeping;
  const qt::ModelConfig& c = t.model->config;
  size_t expect = 256;
  for (int k : {qt::TQ, qt::TK, qt::TV, qt::TO, qt::TGATE, qt::TUP})
    expect += (static_cast<size_t>(qt::target_out_features(c, k)) * qt::target_in_features(c, k) * 4 + 255) / 256 * 256;
  Batch b(c.vocab_size);
  setenv("QT_DEQUANT_REUSE", "1", 1);  // auto would also look at the (host) free memory
  qt::Activations a, off, inf;
  qt::alloc_activations(a, *t.model, qt::ActMode::TrainCheckpointed, b.B * b.T, t.adapter->config.r);
  qt::alloc_activations(inf, *t.model, qt::ActMode::Inference, b.B * b.T, t.adapter->config.r);
  setenv("QT_DEQUANT_REUSE", "0", 1);
  qt::alloc_activations(off, *t.model, qt::ActMode::TrainCheckpointed, b.B * b.T, t.adapter->config.r);
  unsetenv("QT_DEQUANT_REUSE");
  CHECK(a.wkeep != nullptr && off.wkeep == nullptr && inf.wkeep == nullptr);
  CHECK_EQ(a.wkeep_bytes, expect);
  CHECK(a.mem.size() >= off.mem.size() + expect);
  g_keep_calls.clear();
  std::vector<float> g_on(t.adapter->layout.num_params, 0.0f), g_off(g_on.size(), 0.0f);
  run_loss(*t.model, t.adapter.get(), a, b, g_on.data(), true);
  CHECK_EQ(g_keep_calls.size(), static_cast<size_t>(spec.layers + 1));
  for (size_t i = 0; i < g_keep_calls.size(); i++) {
    const bool last = i + 1 == g_keep_calls.size();
    CHECK(g_keep_calls[i].first == (last ? nullptr : a.wkeep) && g_keep_calls[i].second == (last ? 0 : a.wkeep_bytes));
  }
  g_keep_calls.clear();
  run_loss(*t.model, t.adapter.get(), off, b, g_off.data(), true);
  CHECK(g_keep_calls.empty());
  CHECK(g_on == g_off);
  // cancelled after the second layer's call: the keeping still stops
  std::atomic<bool> cancel{false};
  g_keep_calls.clear();
  g_keep_cancel = &cancel;
  g_keep_cancel_after = 2;
  bool cancelled = false;
  try {
    qt::Pass p;
    p.B = b.B;
    p.T = b.T;
    p.use_lengths = true;
    p.training = true;
    qt::model_forward(*t.model, t.adapter.get(), a, p, nullptr);
    qt::model_loss(*t.model, t.adapter.get(), a, p, g_on.data(), 1.0f, &cancel);
  } catch (const qt::Error& e) {
    cancelled = e.code() == qt::ErrorCode::Cancelled;
  }
  g_keep_cancel = nullptr;
  CHECK(cancelled);
  CHECK(g_keep_calls.size() == 3 && g_keep_calls[2].first == nullptr);
  t.model->be = cpu;
}

namespace {

// A CPU backend that counts the calls of the ops the decode fusions replaced and of the fused ops themselves.
struct FusionCounts {
  int add = 0, rmsnorm = 0, add_rmsnorm = 0, rope = 0, rope_qk = 0;
  bool operator==(const FusionCounts& o) const {
    return add == o.add && rmsnorm == o.rmsnorm && add_rmsnorm == o.add_rmsnorm && rope == o.rope && rope_qk == o.rope_qk;
  }
};
FusionCounts g_fc;
void counting_add(float* out, const float* a, const float* b, size_t n) {
  g_fc.add++;
  qt::cpu_backend().add(out, a, b, n);
}
void counting_rmsnorm(float* out, float* rstd, const float* inp, const float* w, int N, int C, float eps) {
  g_fc.rmsnorm++;
  qt::cpu_backend().rmsnorm_forward(out, rstd, inp, w, N, C, eps);
}
void counting_add_rmsnorm(float* x_out, float* out, float* rstd, const float* a, const float* b, const float* w, int N, int C,
                          float eps) {
  g_fc.add_rmsnorm++;
  qt::cpu_backend().add_rmsnorm_forward(x_out, out, rstd, a, b, w, N, C, eps);
}
void counting_rope(float* out, const float* inp, const float* f, int B, int T, int H, int HS, int pos0) {
  g_fc.rope++;
  qt::cpu_backend().rope_forward(out, inp, f, B, T, H, HS, pos0);
}
void counting_rope_qk(float* q, float* k, const float* f, int B, int T, int NH, int NKV, int HS, int pos0) {
  g_fc.rope_qk++;
  qt::cpu_backend().rope_forward_qk(q, k, f, B, T, NH, NKV, HS, pos0);
}

std::string counts_str(const FusionCounts& c) {
  return "add " + std::to_string(c.add) + ", rmsnorm " + std::to_string(c.rmsnorm) + ", add_rmsnorm " +
         std::to_string(c.add_rmsnorm) + ", rope " + std::to_string(c.rope) + ", rope_qk " + std::to_string(c.rope_qk);
}

}  // namespace

TEST(model_fuses_residual_adds_with_norms_and_rotates_q_k_together) {
  // The decode fusions' wiring in model.cpp: a forward pass norms layer 0's input alone (rmsnorm_forward once), runs
  // every residual add fused with the norm after it (2 per layer: x_mid with xn2, the layer's output with the next
  // layer's xn1 or the final norm), rotates q and k in one rope_forward_qk per layer, and calls no plain add or
  // rope_forward; a checkpointed backward's recomputation norms each layer's input itself and skips the last add.
  // Checked in every activation mode (Train, checkpointed with fp32 and bf16 checkpoints, KV-cache prefill and decode
  // steps). That the fused ops write where the unfused ones did is what the model gradient checks above and the
  // KV-cache test below establish (a misplaced norm changes the loss); here the counting table must also leave
  // every result unchanged.
  TinySpec spec;
  spec.layers = 3;
  const int L = spec.layers;
  Tiny t(spec, qt::Quant::None, 0.1f);
  qt::Backend counting = qt::cpu_backend();
  counting.add = counting_add;
  counting.rmsnorm_forward = counting_rmsnorm;
  counting.add_rmsnorm_forward = counting_add_rmsnorm;
  counting.rope_forward = counting_rope;
  counting.rope_forward_qk = counting_rope_qk;
  const qt::Backend* cpu = t.model->be;
  Batch b(t.model->config.vocab_size);
  const FusionCounts fwd{0, 1, 2 * L, 0, L};
  const FusionCounts recompute{0, L, L, 0, L};
  for (int mode = 0; mode < 3; mode++) {  // Train, TrainCheckpointed (fp32), TrainCheckpointed (bf16 checkpoints)
    if (mode == 2) setenv("QT_CKPT_BF16", "1", 1);
    qt::Activations a;
    qt::alloc_activations(a, *t.model, mode == 0 ? qt::ActMode::Train : qt::ActMode::TrainCheckpointed, b.B * b.T,
                          t.adapter->config.r);
    unsetenv("QT_CKPT_BF16");
    CHECK(a.ckpt_bf16 == (mode == 2));
    std::vector<float> g_ref(t.adapter->layout.num_params, 0.0f), g(g_ref.size(), 0.0f);
    const double loss_ref = run_loss(*t.model, t.adapter.get(), a, b, g_ref.data(), true);
    t.model->be = &counting;
    g_fc = FusionCounts{};
    const double loss = run_loss(*t.model, t.adapter.get(), a, b, g.data(), true);
    t.model->be = cpu;
    FusionCounts expect = fwd;
    if (mode > 0) {
      expect.rmsnorm += recompute.rmsnorm;
      expect.add_rmsnorm += recompute.add_rmsnorm;
      expect.rope_qk += recompute.rope_qk;
    }
    CHECK_MSG(g_fc == expect, "mode " << mode << ": " << counts_str(g_fc) << ", expected " << counts_str(expect));
    CHECK(loss == loss_ref && g == g_ref);
  }
  // decoding with the KV cache: every step (prefill and single tokens) is one forward pass
  std::vector<int32_t> ids = {3, 17, 250, 8, 99};
  qt::Decoder ref(t.model, t.adapter.get(), static_cast<int>(ids.size()));
  const std::vector<float> ref_pre = ref.feed(ids.data(), 3, nullptr);
  const std::vector<float> ref_step = ref.feed(&ids[3], 1, nullptr);
  t.model->be = &counting;
  qt::Decoder dec(t.model, t.adapter.get(), static_cast<int>(ids.size()));
  g_fc = FusionCounts{};
  const std::vector<float> pre = dec.feed(ids.data(), 3, nullptr);
  CHECK_MSG(g_fc == fwd, "prefill: " << counts_str(g_fc));
  g_fc = FusionCounts{};
  const std::vector<float> step = dec.feed(&ids[3], 1, nullptr);
  CHECK_MSG(g_fc == fwd, "decode step: " << counts_str(g_fc));
  t.model->be = cpu;
  CHECK(pre == ref_pre && step == ref_step);
}

TEST(model_grad_qwen2_bias_nf4_base) {
  Tiny t(qwen_spec(), qt::Quant::NF4, 0.1f);
  check_model_grads(t, false);
}

TEST(model_grad_qwen2_bias_nf4_checkpointing) {
  Tiny t(qwen_spec(), qt::Quant::NF4, 0.0f);
  check_model_grads(t, true);
}

TEST(model_grad_llama3_rope_gqa_nf4) {
  TinySpec s;
  s.llama3_rope = true;
  s.heads = 4;
  s.kv_heads = 1;
  Tiny t(s, qt::Quant::NF4, 0.1f);
  check_model_grads(t, true);
}

TEST(padding_does_not_change_real_rows) {
  // a short row padded inside a batch gives the same logits as the row alone
  Tiny t(TinySpec{}, qt::Quant::NF4, 0.0f);
  const qt::Model& m = *t.model;
  Batch b(m.config.vocab_size);
  qt::Activations a;
  qt::alloc_activations(a, m, qt::ActMode::Inference, b.B * b.T, t.adapter->config.r);
  m.be->upload(a.ids, b.ids.data(), b.ids.size() * 4);
  m.be->upload(a.lengths, b.lengths.data(), b.lengths.size() * 4);
  qt::Pass p;
  p.B = b.B;
  p.T = b.T;
  p.use_lengths = true;
  qt::model_forward(m, t.adapter.get(), a, p, nullptr);
  const int V = m.config.vocab_size, L1 = b.lengths[1];
  std::vector<float> batched(static_cast<size_t>(L1) * V);
  qt::model_logits(m, a, b.T, L1, batched.data());  // row 1 starts at token T
  std::vector<int32_t> alone(b.ids.begin() + b.T, b.ids.begin() + b.T + L1);
  auto ref = qt::forward_logits(t.model, t.adapter.get(), alone);
  for (size_t i = 0; i < ref.size(); i++) CHECK_NEAR(batched[i], ref[i], 1e-5);
}

TEST(fresh_adapter_leaves_base_logits_unchanged) {
  TempDir dir;
  write_tiny_model(dir / "m", TinySpec{});
  qt::LoadOptions o;
  o.folder = dir / "m";
  auto m = qt::load_model(o);
  auto ad = qt::create_adapter(m, qt::LoraConfig{});
  std::vector<int32_t> ids = {1, 5, 9, 200, 33};
  auto base = qt::forward_logits(m, nullptr, ids);
  CHECK(base == qt::forward_logits(m, ad.get(), ids));  // B = 0
  for (float v : base) CHECK(std::isfinite(v));
  // PEFT init: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0
  const auto& s = ad->layout.slots[1][qt::TO];  // default targets q, k, v, o
  const float* p = ad->params.as<float>();
  float amax = 0;
  for (size_t i = 0; i < static_cast<size_t>(ad->config.r * s.in); i++) amax = std::max(amax, std::fabs(p[s.a + i]));
  CHECK(amax <= 1.0f / std::sqrt(32.0f) && amax > 0.95f / std::sqrt(32.0f));
  for (size_t i = 0; i < static_cast<size_t>(ad->config.r * s.out); i++) CHECK_EQ(p[s.b + i], 0.0f);
  CHECK_NEAR(ad->scaling, 8.0 / 32.0, 0);  // ENGINE_FACTS §1: alpha 8, r 32
  CHECK_THROWS_CODE(qt::forward_logits(m, nullptr, {1, 320}), qt::ErrorCode::InvalidArgument);
  qt::LoraConfig bad;
  bad.r = 0;
  CHECK_THROWS_CODE(qt::create_adapter(m, bad), qt::ErrorCode::InvalidArgument);
  bad.r = 4;
  bad.targets = {"q_proj", "lm_head"};
  CHECK_THROWS_CODE(qt::create_adapter(m, bad), qt::ErrorCode::InvalidArgument);
}

TEST(kv_cache_logits_match_full_recomputation) {
  for (qt::Quant quant : {qt::Quant::None, qt::Quant::NF4}) {
    TinySpec s = qwen_spec();
    Tiny t(s, quant, 0.0f);
    std::vector<int32_t> ids = {3, 17, 250, 8, 99, 4, 61, 128, 7, 300};
    auto full = qt::forward_logits(t.model, t.adapter.get(), ids);
    const int V = t.model->config.vocab_size;
    qt::Decoder dec(t.model, t.adapter.get(), static_cast<int>(ids.size()));
    const int prefill = 4;
    auto check_row = [&](const std::vector<float>& got, int pos) {
      for (int j = 0; j < V; j++) CHECK_NEAR(got[static_cast<size_t>(j)], full[static_cast<size_t>(pos) * V + j], 2e-5);
    };
    check_row(dec.feed(ids.data(), prefill, nullptr), prefill - 1);
    for (int i = prefill; i < static_cast<int>(ids.size()); i++) check_row(dec.feed(&ids[static_cast<size_t>(i)], 1, nullptr), i);
  }
}
