// Internal structures shared by model.cpp (forward/backward), loader.cpp, adapter.cpp, trainer.cpp and
// generate.cpp: the frozen base (Model), LoRA weights (Adapter), activation memory (Activations), the KV
// cache, and the memory ledger behind MemoryReport. Not part of the public API (engine.h).
//
// Memory by category, allocated once (llm.c's fill_in_*_sizes + alloc_and_point_*):
//   weights      frozen base: NF4 codes + absmax (or fp32 when unquantized), 16-bit embeddings/lm_head, norms
//   lora         LoRA params (Adapter) + grads + AdamW m, v (Trainer)
//   activations  sized from (config, rows capacity N = B*T, LoRA rank), per Trainer / generation call
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "config.h"
#include "engine.h"

namespace qt {

enum class MemCategory { Weights, Lora, Activations };

struct MemoryLedger {
  std::atomic<uint64_t> weights{0}, lora{0}, activations{0}, current{0}, peak{0};
  void add(MemCategory c, uint64_t bytes);
  void sub(MemCategory c, uint64_t bytes);
};

/** One device allocation (RAII), counted in a ledger under a category. */
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const Backend* be, MemoryLedger* ledger, MemCategory cat, size_t bytes);
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t size() const { return bytes_; }
  void release();

 private:
  const Backend* be_ = nullptr;
  MemoryLedger* ledger_ = nullptr;
  MemCategory cat_ = MemCategory::Weights;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct LayerWeights {
  float* attn_norm = nullptr;         // [C] input_layernorm (fp32; exact copy of the 16-bit values)
  float* mlp_norm = nullptr;          // [C] post_attention_layernorm
  Weight lin[NUM_TARGETS];            // q [NH*HS, C], k/v [NKV*HS, C], o [C, NH*HS], gate/up [FF, C], down [C, FF]
  float* bias[NUM_TARGETS] = {};      // q/k/v biases [out] (Qwen2), else null
};

class Model {
 public:
  ModelConfig config;
  const Backend* be = nullptr;
  std::string device;                 // "cpu" | "cuda:<n>"
  int device_index = 0;
  Quant quant = Quant::NF4;
  bool double_quant = true;
  DType compute = DType::F32;         // GEMM operand type (LoadOptions.compute_dtype resolved; CPU: F32)
  Weight wte;                         // [V, C] in its stored dtype
  Weight lm_head;                     // [V, C] (the same tensor as wte when tied)
  float* final_norm = nullptr;        // [C]
  float* inv_freq = nullptr;          // [HS/2]
  std::vector<LayerWeights> layers;   // [L]
  mutable MemoryLedger ledger;        // adapters, trainers and generation count their memory here too
  std::vector<DeviceBuffer> storage;  // the weights' memory
};

// ---- LoRA adapter --------------------------------------------------------------------------------------

struct LoraSlot {
  bool on = false;
  int in = 0, out = 0;
  size_t a = 0, b = 0;  // offsets (in floats) of A [R, in] and B [out, R] in the flat parameter buffer
};

/** Offsets of every LoRA matrix in one flat fp32 buffer: layer by layer, target by target, A then B.
 *  Trainer gradients and AdamW moments use the same layout. */
struct LoraLayout {
  std::vector<std::array<LoraSlot, NUM_TARGETS>> slots;  // [L][target]
  size_t num_params = 0;
};
LoraLayout lora_layout(const ModelConfig& c, const LoraConfig& lc);
/** Validates and normalises a LoraConfig (targets -> "q_proj"..., r > 0, alpha > 0, 0 <= dropout < 1). */
LoraConfig normalize_lora_config(const LoraConfig& in);

class Adapter {
 public:
  std::shared_ptr<Model> model;
  LoraConfig config;        // normalised
  float scaling = 0;        // alpha / r
  LoraLayout layout;
  DeviceBuffer params;      // fp32 [layout.num_params] on the model's device
  bool has(int t) const { return !layout.slots.empty() && layout.slots[0][static_cast<size_t>(t)].on; }
  const float* A(int l, int t) const { return params.as<float>() + layout.slots[static_cast<size_t>(l)][static_cast<size_t>(t)].a; }
  const float* B(int l, int t) const { return params.as<float>() + layout.slots[static_cast<size_t>(l)][static_cast<size_t>(t)].b; }
};

/** An adapter with zero-filled parameters of the given (validated) config. */
std::shared_ptr<Adapter> make_empty_adapter(const std::shared_ptr<Model>& model, const LoraConfig& config);

// ---- activations ----------------------------------------------------------------------------------------

enum class ActMode { Inference, Train, TrainCheckpointed };

struct LayerActs {  // what one decoder layer keeps for backward (N rows)
  float* xn1 = nullptr;    // [N, C] input_layernorm output
  float* rstd1 = nullptr;  // [N]
  float* q = nullptr;      // [N, NH*HS] after RoPE
  float* k = nullptr;      // [N, NKV*HS] after RoPE
  float* v = nullptr;      // [N, NKV*HS]
  float* att = nullptr;    // [N, NH*HS] attention output (o_proj input)
  float* lse = nullptr;    // [B, NH, T]
  float* x_mid = nullptr;  // [N, C] residual after attention
  float* xn2 = nullptr;    // [N, C] post_attention_layernorm output
  float* rstd2 = nullptr;  // [N]
  float* gate = nullptr;   // [N, FF]
  float* up = nullptr;     // [N, FF]
  float* h = nullptr;      // [N, FF] swiglu output (down_proj input)
  float* u[NUM_TARGETS] = {};  // [N, R] LoRA intermediates (targets with LoRA)
};

struct Activations {
  ActMode mode = ActMode::Inference;
  int capacity = 0;            // rows N = B*T this set can hold
  int rank = 0;                // LoRA rank the u buffers were sized for (0: none)
  int logit_rows = 0;          // rows of the logits buffer (lm_head runs in chunks of this many rows)
  // Residual stream [N, C]: L+1 layer inputs/outputs (Train; TrainCheckpointed with fp32 checkpoints), or 2 fp32
  // buffers used in turn (Inference; TrainCheckpointed with bf16 checkpoints, where the layer inputs are kept in xs).
  std::vector<float*> x;
  bool ckpt_bf16 = false;      // TrainCheckpointed: layer inputs saved as bf16 in xs (half the memory; see memory.cpp)
  std::vector<uint16_t*> xs;   // [L] bf16 [N, C] layer inputs (ckpt_bf16 only)
  // Train modes of a model whose gate/up/down compute in bf16 without biases: when they have no LoRA, the MLP keeps
  // gate, up, h and their gradients as bf16 in the first half of their fp32 buffers (model.cpp mlp_in_bf16;
  // QT_MLP_BF16=0: never)
  bool mlp_bf16 = false;
  // mlp_bf16 and the buffers of gate, up, h, dh and dup sized for bf16 (half): alloc_activations was told that the
  // adapter has no LoRA on the MLP, so every layer must take the bf16 path (model.cpp checks)
  bool mlp_half = false;
  std::vector<LayerActs> layer;  // [L] (Train) or [1] (TrainCheckpointed: recomputed in backward; Inference)
  float* xf = nullptr;         // [N, C] final norm output (outside Train mode: the same memory as layer[0].xn1)
  float* rstdf = nullptr;      // [N]
  float* logits = nullptr;     // [logit_rows, V] (reused for dlogits)
  float* losses = nullptr;     // [N]
  float* lora_scratch = nullptr;  // [N * (max LoRA in-features + R)]
  // backward (train modes only), one layer's worth. Buffers are shared by values whose lives do not overlap
  // (model.cpp layer_backward): dgate is written into the layer's own h (dead once down_proj is differentiated),
  // datt and dq reuse dh's buffer (dead after swiglu backward), dk and dv reuse dup's (dead after up_proj).
  float* dx = nullptr;         // [N, C] gradient of the residual stream
  float* dxn = nullptr;        // [N, C]
  float* dh = nullptr;         // [N, FF]                      (buffer 1)
  float* datt = nullptr;       // [N, NH*HS] = buffer 1        (after dh)
  float* dq = nullptr;         // [N, NH*HS] = buffer 1 + N*NH*HS
  float* dup = nullptr;        // [N, FF]                      (buffer 2)
  float* dk = nullptr;         // [N, NKV*HS] = buffer 2       (after dup)
  float* dv = nullptr;         // [N, NKV*HS] = buffer 2 + N*NKV*HS
  int32_t* ids = nullptr;      // [N]
  int32_t* targets = nullptr;  // [N]
  int32_t* lengths = nullptr;  // [N] (B <= N)
  // TrainCheckpointed on a backend that converts weights (keep_weights, backend.h): room for the converted copies of the
  // weights a layer's recomputation multiplies, which its backward then reuses (null: off; see memory.cpp)
  void* wkeep = nullptr;
  size_t wkeep_bytes = 0;
  DeviceBuffer mem;
};

/** Allocates one buffer for every activation of `mode` with `capacity` rows (category activations).
 *  lora_max_in: the largest in-features among the adapter's LoRA targets (sizes the LoRA scratch; 0 = any target).
 *  TrainCheckpointed keeps its layer inputs in bf16 when the model computes in bf16/fp16 on a GPU; QT_CKPT_BF16=0
 *  keeps them in fp32 (=1 forces bf16). It also gets room for the converted weights a layer's recomputation and its
 *  backward share (wkeep) when the backend converts weights and the device has the memory to spare (QT_DEQUANT_REUSE=0
 *  turns it off). mlp_lora = false (the adapter has no LoRA on gate/up/down) lets a bf16 model's MLP buffers be sized
 *  for bf16 (Activations::mlp_half); true keeps them fp32-sized, whatever path the MLP takes. */
void alloc_activations(Activations& a, const Model& m, ActMode mode, int capacity, int lora_rank, int lora_max_in = 0,
                       bool mlp_lora = true);
/** Whether a LoRA config targets gate_proj, up_proj or down_proj (alloc_activations' mlp_lora). */
bool lora_on_mlp(const LoraConfig& lc);
/** The largest in-features among a LoRA config's targets (0 when it has none). */
int lora_max_in_features(const ModelConfig& c, const LoraConfig& lc);

// ---- KV cache (generation, one sequence) ----------------------------------------------------------------

struct KvCache {
  int capacity = 0;             // positions
  std::vector<float*> k, v;     // [L] each [capacity, NKV*HS]
  DeviceBuffer mem;
};
void alloc_kv_cache(KvCache& kv, const Model& m, int capacity);

// ---- the model's passes (model.cpp) ---------------------------------------------------------------------

/** One forward(/backward) pass over a batch already uploaded into the activations (ids, targets, lengths). */
struct Pass {
  int B = 0, T = 0;             // rows and padded length; N = B*T <= capacity
  int pos0 = 0;                 // position of the first token (KV-cached generation)
  bool use_lengths = false;     // acts.lengths holds each row's real length (training batches)
  bool training = false;        // LoRA dropout and NEFTune on
  float neftune_alpha = 0;
  uint64_t seed = 0;            // random stream of this micro-batch (dropout masks, NEFTune noise)
  KvCache* cache = nullptr;     // generation: keys/values are appended at pos0 and attended from the cache
};

/** Embeddings and every decoder layer, then the final norm into a.xf. */
void model_forward(const Model& m, const Adapter* ad, Activations& a, const Pass& p, CancelToken* cancel);
/** lm_head + cross-entropy over a.targets after model_forward; with dparams (training), backward through the
 *  whole model, adding LoRA gradients (dloss = 1/count per token) into dparams. Returns the sum of the
 *  counted tokens' losses. */
double model_loss(const Model& m, const Adapter* ad, Activations& a, const Pass& p, float* dparams, float dloss,
                  CancelToken* cancel);
/** Logits [rows, V] of rows [row0, row0 + rows) of a.xf, downloaded into out. */
void model_logits(const Model& m, Activations& a, int row0, int rows, float* out);
/** Logits [V] of row `row` of a.xf into a.logits, on the backend (nothing downloaded). */
void model_row_logits(const Model& m, Activations& a, int row);

void check_cancel(CancelToken* cancel);

/** Makes the model's device current on this thread (CUDA: cudaSetDevice); first thing of every public call. */
inline void bind_device(const Model& m) { m.be->set_device(m.device_index); }

}  // namespace qt
