// Memory by category (llm.c's fill_in_*_sizes + alloc_and_point_*): the ledger behind MemoryReport,
// RAII device buffers, and the activation and KV-cache layouts, each one allocation sized from
// (config, rows capacity, LoRA rank).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "model.h"

namespace qt {

void MemoryLedger::add(MemCategory c, uint64_t bytes) {
  (c == MemCategory::Weights ? weights : c == MemCategory::Lora ? lora : activations) += bytes;
  uint64_t now = current += bytes;
  uint64_t prev = peak.load();
  while (now > prev && !peak.compare_exchange_weak(prev, now)) {
  }
}

void MemoryLedger::sub(MemCategory c, uint64_t bytes) {
  (c == MemCategory::Weights ? weights : c == MemCategory::Lora ? lora : activations) -= bytes;
  current -= bytes;
}

DeviceBuffer::DeviceBuffer(const Backend* be, MemoryLedger* ledger, MemCategory cat, size_t bytes)
    : be_(be), ledger_(ledger), cat_(cat), bytes_(bytes) {
  ptr_ = be->alloc(bytes);
  if (ledger_) ledger_->add(cat_, bytes_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    be_ = o.be_;
    ledger_ = o.ledger_;
    cat_ = o.cat_;
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::release() {
  if (ptr_) {
    be_->free(ptr_);
    if (ledger_) ledger_->sub(cat_, bytes_);
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

namespace {

// Collects (pointer, element count) pairs, then points them into one allocation (64-byte aligned slices).
class Layout {
 public:
  template <class T>
  void add(T** p, size_t count) {
    entries_.push_back({reinterpret_cast<void**>(p), (count * sizeof(T) + 63) / 64 * 64});
  }
  size_t bytes() const {
    size_t s = 0;
    for (const auto& e : entries_) s += e.bytes;
    return s;
  }
  void point(void* base) const {
    char* p = static_cast<char*>(base);
    for (const auto& e : entries_) {
      *e.ptr = p;
      p += e.bytes;
    }
  }

 private:
  struct Entry {
    void** ptr;
    size_t bytes;
  };
  std::vector<Entry> entries_;
};

}  // namespace

bool lora_on_mlp(const LoraConfig& lc) {
  for (const auto& name : lc.targets) {
    const int t = target_from_name(name);
    if (t == TGATE || t == TUP || t == TDOWN) return true;
  }
  return false;
}

int lora_max_in_features(const ModelConfig& c, const LoraConfig& lc) {
  int m = 0;
  for (const auto& name : lc.targets) {
    const int t = target_from_name(name);
    if (t >= 0) m = std::max(m, target_in_features(c, t));
  }
  return m;
}

namespace {

// bf16 layer-input checkpoints: QT_CKPT_BF16=1 / 0 forces them on / off; otherwise on for a GPU model computing
// in bf16 or fp16 (its GEMMs round those inputs to 16 bits anyway). The forward pass itself stays fp32; only the
// recomputation in backward starts from the rounded copy (relative error 2^-9 per value).
bool want_bf16_checkpoints(const Model& m) {
  if (const char* e = std::getenv("QT_CKPT_BF16")) {
    if (std::strcmp(e, "1") == 0) return true;
    if (std::strcmp(e, "0") == 0) return false;
  }
  return m.be != &cpu_backend() && m.compute != DType::F32;
}

// Converted-weight reuse (Backend::keep_weights): the bytes of the copies, in the compute dtype and 256-byte aligned, of
// the weights a checkpointed layer's recomputation multiplies (every target but down_proj, which it skips); 0 when the
// weights are multiplied as stored. Llama-3-8B, bf16: 0.30 GiB.
size_t keep_weights_bytes(const Model& m) {
  if (m.layers.empty()) return 0;
  const size_t es = m.compute == DType::F32 ? 4 : 2;
  size_t total = 0;
  for (int t = 0; t < NUM_TARGETS; t++) {
    const Weight& w = m.layers[0].lin[t];
    if (t == TDOWN || w.dtype == m.compute) continue;
    total += (static_cast<size_t>(w.rows) * static_cast<size_t>(w.cols) * es + 255) / 256 * 256;
  }
  return total ? total + 256 : 0;  // + the alignment of the start
}

// On by default (QT_DEQUANT_REUSE unset or 1; 0 turns it off) when the device keeps 1 GiB free beyond all of this
// activation set. GPU run 3 showed it bit-identical; run 10 (H200, 2026-11-28) measured Llama-3-8B at 4 x 128 6,012
// tokens/s against 5,671 without, 4 x 512 7,713 against 7,568, the same losses, peak 7.74 GiB at 4 x 512 (+0.30), and
// gpu_check 860/860 with it. Until run 21 it was off above 4096 rows (8 x 1024 fitted a 12 GB card only without it);
// the bf16 MLP intermediates' half-size buffers (1.1 GiB fewer at 8 x 1024) make room for it there too.
bool want_keep_weights(const Model& m, size_t act_bytes, size_t keep_bytes) {
  const char* e = std::getenv("QT_DEQUANT_REUSE");
  if ((e && std::strcmp(e, "0") == 0) || !keep_bytes || !m.be->keep_weights(nullptr, 0)) return false;
  uint64_t free_b = 0, total_b = 0;
  m.be->memory_info(&free_b, &total_b);
  return free_b >= act_bytes + keep_bytes + (uint64_t{1} << 30);
}

// bf16 MLP intermediates (Activations::mlp_bf16; model.cpp mlp_in_bf16): on for training a model whose gate/up/down
// compute in bf16 without biases (their GEMMs round the intermediates to bf16 anyway, and PyTorch keeps them in bf16),
// unless QT_MLP_BF16=0.
bool want_mlp_bf16(const Model& m, ActMode mode) {
  if (mode == ActMode::Inference) return false;
  const char* e = std::getenv("QT_MLP_BF16");
  if (e && std::strcmp(e, "0") == 0) return false;
  for (const auto& lw : m.layers)
    for (int t : {TGATE, TUP, TDOWN})
      if (lw.bias[t] || lw.lin[t].compute != DType::BF16) return false;
  return true;
}

}  // namespace

void alloc_activations(Activations& a, const Model& m, ActMode mode, int capacity, int lora_rank, int lora_max_in,
                       bool mlp_lora) {
  const ModelConfig& c = m.config;
  const size_t N = static_cast<size_t>(capacity);
  const size_t C = static_cast<size_t>(c.hidden_size), FF = static_cast<size_t>(c.intermediate_size);
  const size_t QD = static_cast<size_t>(c.num_heads * c.head_dim), KD = static_cast<size_t>(c.num_kv_heads * c.head_dim);
  const size_t V = static_cast<size_t>(c.vocab_size), R = static_cast<size_t>(lora_rank);
  const size_t LIN = lora_max_in > 0 ? static_cast<size_t>(lora_max_in) : std::max(std::max(C, FF), QD);
  const int L = c.num_layers;
  const bool train = mode != ActMode::Inference;

  a.mem.release();
  a.wkeep = nullptr;
  a.wkeep_bytes = 0;
  a.mode = mode;
  a.capacity = capacity;
  a.rank = lora_rank;
  a.ckpt_bf16 = mode == ActMode::TrainCheckpointed && want_bf16_checkpoints(m);
  a.mlp_bf16 = want_mlp_bf16(m, mode);
  a.mlp_half = a.mlp_bf16 && !mlp_lora;
  const size_t FFA = a.mlp_half ? (FF + 1) / 2 : FF;  // fp32 slots of a [N, FF] MLP intermediate (bf16: half)
  a.dx = a.dxn = a.dh = a.dup = nullptr;
  // lm_head in chunks: at most ~32M logits (128 MiB fp32) at a time, whatever the vocabulary; a multiple of 64 rows
  // when that many fit (Llama-3's 128256: 256, not 261), so the GEMMs' row tiles are whole and 8 x 1024 is 32 chunks.
  size_t lr = std::max<size_t>(1, (size_t{32} << 20) / V);
  if (lr >= 64) lr = lr / 64 * 64;
  a.logit_rows = static_cast<int>(std::min(N, lr));
  a.x.assign(train && !a.ckpt_bf16 ? static_cast<size_t>(L + 1) : 2, nullptr);
  a.xs.assign(a.ckpt_bf16 ? static_cast<size_t>(L) : 0, nullptr);
  a.layer.assign(mode == ActMode::Train ? static_cast<size_t>(L) : 1, LayerActs{});

  Layout lay;
  for (auto& x : a.x) lay.add(&x, N * C);
  for (auto& x : a.xs) lay.add(&x, N * C);
  for (auto& la : a.layer) {
    lay.add(&la.xn1, N * C);
    lay.add(&la.rstd1, N);
    lay.add(&la.q, N * QD);
    lay.add(&la.k, N * KD);
    lay.add(&la.v, N * KD);
    lay.add(&la.att, N * QD);
    lay.add(&la.lse, N * static_cast<size_t>(c.num_heads));
    lay.add(&la.x_mid, N * C);
    lay.add(&la.xn2, N * C);
    lay.add(&la.rstd2, N);
    lay.add(&la.gate, N * FFA);
    lay.add(&la.up, N * FFA);
    lay.add(&la.h, N * FFA);
    if (R > 0)
      for (int t = 0; t < NUM_TARGETS; t++) lay.add(&la.u[t], N * R);
  }
  // xf (final norm output) is read only by the lm_head loop, before backward recomputes any layer: outside Train
  // mode it shares the one layer set's xn1 (dead by then: backward recomputes it, inference has no later layer).
  if (mode == ActMode::Train) lay.add(&a.xf, N * C);
  lay.add(&a.rstdf, N);
  lay.add(&a.logits, static_cast<size_t>(a.logit_rows) * V);
  lay.add(&a.losses, N);
  lay.add(&a.lora_scratch, R > 0 ? N * (LIN + R) : 1);
  if (train) {
    lay.add(&a.dx, N * C);
    lay.add(&a.dxn, N * C);
    lay.add(&a.dh, N * std::max(FFA, 2 * QD));   // buffer 1: dh, later datt + dq
    lay.add(&a.dup, N * std::max(FFA, 2 * KD));  // buffer 2: dup, later dk + dv
  }
  lay.add(&a.ids, N);
  lay.add(&a.targets, N);
  lay.add(&a.lengths, N);
  char* wkeep = nullptr;
  const size_t keep_bytes = mode == ActMode::TrainCheckpointed ? keep_weights_bytes(m) : 0;
  const bool keep = keep_bytes && want_keep_weights(m, lay.bytes(), keep_bytes);
  if (keep) lay.add(&wkeep, keep_bytes);
  a.mem = DeviceBuffer(m.be, &m.ledger, MemCategory::Activations, lay.bytes());
  lay.point(a.mem.get());
  a.wkeep = wkeep;
  a.wkeep_bytes = keep ? keep_bytes : 0;
  if (mode != ActMode::Train) a.xf = a.layer[0].xn1;
  if (train) {
    a.datt = a.dh;
    a.dq = a.dh + N * QD;
    a.dk = a.dup;
    a.dv = a.dup + N * KD;
  } else {
    a.datt = a.dq = a.dk = a.dv = nullptr;
  }
  m.be->zero(a.mem.get(), a.mem.size());
}

void alloc_kv_cache(KvCache& kv, const Model& m, int capacity) {
  const ModelConfig& c = m.config;
  const size_t KD = static_cast<size_t>(c.num_kv_heads * c.head_dim);
  kv.capacity = capacity;
  kv.k.assign(static_cast<size_t>(c.num_layers), nullptr);
  kv.v.assign(static_cast<size_t>(c.num_layers), nullptr);
  Layout lay;
  for (int l = 0; l < c.num_layers; l++) {
    lay.add(&kv.k[static_cast<size_t>(l)], static_cast<size_t>(capacity) * KD);
    lay.add(&kv.v[static_cast<size_t>(l)], static_cast<size_t>(capacity) * KD);
  }
  kv.mem = DeviceBuffer(m.be, &m.ledger, MemCategory::Activations, lay.bytes());
  lay.point(kv.mem.get());
}

MemoryReport model_memory(const Model& model) {
  MemoryReport r;
  r.weights_bytes = model.ledger.weights;
  r.lora_bytes = model.ledger.lora;
  r.activations_bytes = model.ledger.activations;
  r.peak_bytes = model.ledger.peak;
  bind_device(model);  // may run on another thread than the model's work (the addon's JS thread)
  model.be->memory_info(&r.device_free_bytes, &r.device_total_bytes);
  return r;
}

}  // namespace qt
