// The engine's public C++ API: everything the N-API addon (native/addon) may call. No Node headers here.
//
// Design (llm.c / ggml style): plain C++17; every op has a CPU reference implementation (engine/cpu) and,
// where built, a CUDA one (engine/cuda) reached through one backend table (backend.h). Errors are thrown
// as qt::Error (code, message, file, line) and never abort, exit or print to stdout. Long operations take
// a CancelToken checked between steps (and between layers where cheap). No globals: all state lives in
// the Model / Adapter / Trainer objects below.
//
// Threading: an object may be used from one thread at a time (the addon serialises calls per object).
// Several Trainers/Adapters may share one Model (the base weights are read-only after loading).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace qt {

// ----------------------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------------------

enum class ErrorCode {
  InvalidArgument,  // a setting or argument out of range
  NotFound,         // a file or tensor that should exist does not
  BadFile,          // corrupt / truncated / malformed file (safetensors, json, training set, checkpoint)
  Unsupported,      // architecture, dtype or feature we do not support
  ShapeMismatch,    // tensors whose shapes disagree with the config or with each other
  OutOfMemory,      // host or device allocation failed
  Cancelled,        // the CancelToken was set
  Io,               // read/write failed (permissions, disk full, ...)
  Device,           // CUDA/driver error other than out-of-memory
  Internal,         // a bug
};

const char* error_code_name(ErrorCode code);  // "INVALID_ARGUMENT", "BAD_FILE", ... (stable strings for JS)

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, const char* file, int line)
      : std::runtime_error(message), code_(code), file_(file), line_(line) {}
  ErrorCode code() const { return code_; }
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  ErrorCode code_;
  const char* file_;
  int line_;
};

// QT_FAIL(code, "message " + std::to_string(x)) throws qt::Error with the call site.
#define QT_FAIL(code, msg) throw ::qt::Error((code), (msg), __FILE__, __LINE__)
#define QT_CHECK(cond, code, msg) \
  do {                            \
    if (!(cond)) QT_FAIL(code, msg); \
  } while (0)

/** Set from any thread to stop a long operation at its next check; it then throws ErrorCode::Cancelled. */
using CancelToken = std::atomic<bool>;

// ----------------------------------------------------------------------------------------------------
// Backends and devices
// ----------------------------------------------------------------------------------------------------

struct DeviceInfo {
  std::string backend;      // "cpu" | "cuda"
  int index = 0;            // CUDA ordinal; 0 for the CPU
  std::string name;         // "NVIDIA H100 80GB HBM3", "CPU (16 threads)"
  uint64_t total_bytes = 0; // device memory (host RAM for the CPU)
  uint64_t free_bytes = 0;
  int cc_major = 0, cc_minor = 0;  // CUDA compute capability
  bool bf16 = false;        // native bf16 math (sm_80+); otherwise fp16 compute on CUDA
};

const char* engine_version();
std::vector<std::string> compiled_backends();  // {"cpu"} or {"cpu", "cuda"}
std::vector<DeviceInfo> list_devices();        // the CPU first, then each CUDA device

// ----------------------------------------------------------------------------------------------------
// Models (Hugging Face folders: config.json + *.safetensors [+ model.safetensors.index.json])
// ----------------------------------------------------------------------------------------------------

struct RopeScaling {
  std::string type = "none";  // "none" | "llama3" | "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM"
  std::string family;        // "llama" | "mistral" | "qwen2"
  int vocab_size = 0;
  int hidden_size = 0;         // C
  int intermediate_size = 0;   // FF
  int num_layers = 0;          // L
  int num_heads = 0;           // NH
  int num_kv_heads = 0;        // NKV
  int head_dim = 0;            // HS (hidden_size / num_heads unless the config says otherwise)
  int max_position = 0;
  float rope_theta = 10000.0f;
  float rms_norm_eps = 1e-5f;
  bool tie_embeddings = false;
  bool attention_bias = false; // q/k/v biases (Qwen2)
  RopeScaling rope_scaling;
  std::string torch_dtype;     // as written in config.json ("bfloat16", ...)
};

struct TensorInfo {
  std::string name;
  std::string dtype;           // "BF16" | "F16" | "F32" (others are rejected as Unsupported on load)
  std::vector<int64_t> shape;
  std::string file;            // shard file name
};

struct ModelInspection {
  ModelConfig config;
  std::vector<TensorInfo> tensors;
  uint64_t parameter_count = 0;
  uint64_t weight_bytes = 0;   // sum over tensors as stored on disk
};

/** Reads config.json and the safetensors headers (no weights). Throws BadFile/Unsupported/NotFound/ShapeMismatch
 *  with a message that names the file and what is wrong. */
ModelInspection inspect_model(const std::string& folder);

enum class Quant { None, NF4 };

struct LoadOptions {
  std::string folder;
  std::string device = "cpu";         // "cpu" | "cuda:<n>"
  Quant quant = Quant::NF4;           // decoder-layer linears; embeddings, norms and lm_head stay 16-bit
  bool double_quant = true;           // ENGINE_FACTS §4
  std::string compute_dtype = "auto"; // "auto" | "bf16" | "fp16" | "fp32" (the CPU always computes in fp32)
  std::function<void(double fraction, const std::string& stage)> on_progress;  // may be empty
  CancelToken* cancel = nullptr;
};

class Model;  // opaque: config + frozen base weights on one device

struct MemoryReport {
  uint64_t weights_bytes = 0;      // frozen base (NF4 codes + absmax, or 16-bit)
  uint64_t lora_bytes = 0;         // LoRA params + grads + AdamW state of live adapters/trainers
  uint64_t activations_bytes = 0;  // activation/workspace buffers currently allocated
  uint64_t device_free_bytes = 0;
  uint64_t device_total_bytes = 0;
  uint64_t peak_bytes = 0;         // high-water mark of the engine's own allocations on the device
};

std::shared_ptr<Model> load_model(const LoadOptions& options);
const ModelConfig& model_config(const Model& model);
std::string model_device(const Model& model);
MemoryReport model_memory(const Model& model);

/** Dequantized copy of one base linear weight [out, in] in fp32, for tests and for merging. name is the HF
 *  tensor name, e.g. "model.layers.0.self_attn.q_proj.weight". */
std::vector<float> model_weight_fp32(const Model& model, const std::string& name);

// ----------------------------------------------------------------------------------------------------
// LoRA adapters
// ----------------------------------------------------------------------------------------------------

struct LoraConfig {
  int r = 32;
  float alpha = 8.0f;       // scaling = alpha / r (PEFT default alpha 8 when unset)
  float dropout = 0.1f;     // on the adapter input, training only
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};  // + gate_proj, up_proj, down_proj
  uint64_t seed = 42;       // initialisation: A kaiming-uniform(a = sqrt(5)), B zeros (PEFT)
};

class Adapter;  // LoRA weights (fp32 master copy) bound to one Model's shapes

std::shared_ptr<Adapter> create_adapter(const std::shared_ptr<Model>& model, const LoraConfig& config);
const LoraConfig& adapter_config(const Adapter& adapter);

struct PeftMeta {
  std::string base_model_name_or_path;
};

/** PEFT directory: adapter_config.json + adapter_model.safetensors (ENGINE_FACTS §5); written atomically
 *  (temporary folder, then rename). */
void save_peft_adapter(const Adapter& adapter, const std::string& folder, const PeftMeta& meta);
std::shared_ptr<Adapter> load_peft_adapter(const std::shared_ptr<Model>& model, const std::string& folder);

// ----------------------------------------------------------------------------------------------------
// Training sets (binary file written by main/datasets: format in native/engine/FORMATS.md)
// ----------------------------------------------------------------------------------------------------

struct DatasetInfo {
  int num_samples = 0;
  uint64_t num_tokens = 0;
  uint64_t num_target_tokens = 0;  // tokens with loss mask 1
  int max_length = 0;
};

DatasetInfo inspect_dataset(const std::string& path);

// ----------------------------------------------------------------------------------------------------
// Training
// ----------------------------------------------------------------------------------------------------

/** Each with linear warmup, as transformers' get_*_schedule_with_warmup. Cosine is HF's default half cosine
 *  (1 -> 0, num_cycles ignored); CosineWithRestarts uses num_cycles hard restarts (ENGINE_FACTS §7). */
enum class Schedule { CosineWithRestarts, Cosine, Linear, Constant };

struct TrainConfig {
  LoraConfig lora;
  // AdamW (decoupled weight decay, bias correction as torch.optim.AdamW)
  float lr = 5e-5f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  float max_grad_norm = 1.0f;      // <= 0 disables clipping
  int grad_accum = 1;              // micro-batches per optimizer step; loss = mean over all counted tokens
  // Schedule (ENGINE_FACTS §7): lr(step) for step = optimizer steps taken so far
  Schedule schedule = Schedule::CosineWithRestarts;
  int warmup_steps = 0;
  int total_steps = 0;             // > 0
  float num_cycles = 1.0f;
  // Batching
  bool token_budget_batching = false;  // false: fixed rows per batch (the tutorial's batch 4)
  int batch_rows = 4;                  // fixed-rows mode
  int token_budget = 4096;             // token-budget mode: rows * padded length <= budget
  bool group_by_length = true;         // token-budget mode: sort within shuffled mega-batches by length
                                       // (token-budget batches are formed once; each epoch reshuffles their
                                       // order, so every epoch has the same number of steps)
  bool shuffle = true;                 // reshuffle every epoch (seeded)
  int max_length = 0;                  // 0 = dataset's own; longer samples are truncated
  // Regularisation and memory
  float neftune_alpha = 5.0f;          // 0 disables; noise alpha/sqrt(L*d) per sample, L its true length
  bool grad_checkpointing = true;      // recompute each layer's activations in backward
  uint64_t seed = 42;                  // data order, dropout, NEFTune
};

struct StepMetrics {
  int64_t step = 0;           // optimizer steps completed after this one
  double epoch = 0;           // fractional epochs completed
  float loss = 0;             // mean over counted tokens of this optimizer step
  float lr = 0;               // learning rate used for this step
  float grad_norm = 0;        // global L2 norm before clipping
  int64_t tokens = 0;         // real (unpadded) tokens processed
  int64_t padded_tokens = 0;  // rows * padded length summed over micro-batches
  int samples = 0;
  double seconds = 0;
};

class Trainer;
/** Destroys a Trainer; std::unique_ptr<Trainer> calls it through the default_delete specialisation below. */
void destroy_trainer(Trainer* trainer);

}  // namespace qt

// Trainer is opaque here, so std::unique_ptr<Trainer>'s default deleter could not be instantiated outside the
// engine (deleting an incomplete type does not compile). This specialisation routes the delete into the
// engine, which keeps create_trainer's signature and lets callers hold std::unique_ptr<qt::Trainer>.
namespace std {
template <>
struct default_delete<qt::Trainer> {
  void operator()(qt::Trainer* p) const { qt::destroy_trainer(p); }
};
}  // namespace std

namespace qt {

std::unique_ptr<Trainer> create_trainer(const std::shared_ptr<Model>& model, const TrainConfig& config,
                                        const std::string& train_set_path);
/** The adapter being trained (shares storage with the trainer; usable for generation between steps). */
std::shared_ptr<Adapter> trainer_adapter(const Trainer& trainer);
int64_t trainer_steps_per_epoch(const Trainer& trainer);  // optimizer steps per pass over the training set
int64_t trainer_step_count(const Trainer& trainer);
StepMetrics trainer_step(Trainer& trainer, CancelToken* cancel);
/** Mean loss over all counted tokens of a training-set file, no dropout, no NEFTune, no gradients. */
double trainer_evaluate(Trainer& trainer, const std::string& set_path, CancelToken* cancel);
/** Everything needed to continue exactly: LoRA weights, AdamW moments, step, RNG states, data order.
 *  Written atomically (temporary folder, then rename); a failed write leaves an older checkpoint intact. */
void trainer_save_checkpoint(const Trainer& trainer, const std::string& folder);
void trainer_load_checkpoint(Trainer& trainer, const std::string& folder);

// ----------------------------------------------------------------------------------------------------
// Inference
// ----------------------------------------------------------------------------------------------------

/** Logits [ids.size(), vocab] of a full forward pass (no cache); adapter may be null. For tests and checks. */
std::vector<float> forward_logits(const std::shared_ptr<Model>& model, const Adapter* adapter,
                                  const std::vector<int32_t>& ids);

struct SamplingConfig {
  int max_new_tokens = 256;
  float temperature = 0.0f;       // 0 = greedy
  int top_k = 0;                  // 0 = off
  float top_p = 1.0f;             // 1 = off
  float repetition_penalty = 1.0f;// 1 = off (HF semantics over prompt + generated ids)
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these (it is included)
  uint64_t seed = 0;
};

enum class FinishReason { Stop, Length, Cancelled };

struct GenerateResult {
  std::vector<int32_t> tokens;    // generated ids (stop id included when finish == Stop)
  FinishReason finish = FinishReason::Length;
  double prompt_seconds = 0;      // prefill
  double decode_seconds = 0;
};

/** KV-cached generation. on_token is called for each new id in order (may be empty). Cancellation returns
 *  the tokens so far with finish == Cancelled rather than throwing. adapter may be null (base model). */
GenerateResult generate(const std::shared_ptr<Model>& model, const Adapter* adapter, const std::vector<int32_t>& prompt,
                        const SamplingConfig& sampling, const std::function<void(int32_t)>& on_token,
                        CancelToken* cancel);

}  // namespace qt
