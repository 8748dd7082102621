// The training loop's primitives: create_trainer (validation, LoRA init, batching plan, memory), one
// optimizer step with gradient accumulation (loss = mean over ALL counted tokens of the step's micro-batches),
// global grad-norm clipping and AdamW; evaluation; and checkpoints that make a resumed run bit-identical to
// an uninterrupted one (LoRA weights, AdamW moments, step, epoch position, micro-batch counter for the
// counter-based RNG, and the current epoch's data order).
//
// Randomness: micro-batch k of the run uses the stream rng_derive(seed, k) for its dropout masks and
// NEFTune noise; epoch e's data order uses rng_derive(seed, "epoc", e). Nothing else is random.
#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "batching.h"
#include "dataset.h"
#include "files.h"
#include "json.h"
#include "model.h"
#include "peft.h"
#include "rng.h"
#include "safetensors.h"
#include "scheduler.h"

namespace qt {

class Trainer {
 public:
  std::shared_ptr<Model> model;
  TrainConfig cfg;                 // lora normalised
  std::shared_ptr<Adapter> adapter;
  Dataset data;
  std::vector<int> lengths;        // per sample, after truncation to max_length / the model's context
  BatchList packed;                // token-budget mode: the batches (formed once)
  BatchList plan;                  // the current epoch's micro-batches
  DeviceBuffer grads, m, v;        // fp32 [num_params], LoRA category
  Activations acts;                // training activations (capacity = largest batch)
  Activations eval_acts;           // inference activations for evaluate()
  int64_t step = 0;                // optimizer steps done
  int64_t epoch = 0;               // epochs completed
  int64_t cursor = 0;              // micro-batches of `plan` consumed
  uint64_t micro = 0;              // micro-batches done in the whole run (RNG counter)
};

void destroy_trainer(Trainer* trainer) { delete trainer; }

namespace {

int truncated_length(const Dataset& d, int i, const TrainConfig& c, const ModelConfig& mc) {
  int len = d.length(i);
  if (c.max_length > 0) len = std::min(len, c.max_length);
  return std::min(len, mc.max_position);
}

void validate(const TrainConfig& c) {
  auto bad = [](const std::string& why) { QT_FAIL(ErrorCode::InvalidArgument, why); };
  if (!(c.lr > 0) || !std::isfinite(c.lr)) bad("lr must be > 0 (got " + std::to_string(c.lr) + ")");
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) bad("AdamW betas must be in [0, 1)");
  if (!(c.eps > 0)) bad("AdamW eps must be > 0");
  if (!(c.weight_decay >= 0)) bad("weight_decay must be >= 0");
  if (std::isnan(c.max_grad_norm)) bad("max_grad_norm must be a number");
  if (c.grad_accum < 1) bad("grad_accum must be >= 1");
  if (c.total_steps <= 0) bad("total_steps must be > 0 (got " + std::to_string(c.total_steps) + ")");
  if (c.warmup_steps < 0) bad("warmup_steps must be >= 0");
  if (c.schedule == Schedule::CosineWithRestarts && !(c.num_cycles > 0)) bad("num_cycles must be > 0");
  if (c.batch_rows < 1) bad("batch_rows must be >= 1");
  if (c.token_budget < 1) bad("token_budget must be >= 1");
  if (c.max_length < 0) bad("max_length must be >= 0");
  if (!(c.neftune_alpha >= 0)) bad("neftune_alpha must be >= 0");
}

// Host arrays of one micro-batch: ids / targets / lengths, right-padded to the longest row.
struct HostBatch {
  int B = 0, T = 0;
  int64_t count = 0, tokens = 0;
  std::vector<int32_t> ids, targets, lengths;
};

HostBatch make_batch(const Trainer& tr, const Dataset& d, const std::vector<int>& lengths, const std::vector<int32_t>& rows) {
  HostBatch hb;
  hb.B = static_cast<int>(rows.size());
  for (int32_t i : rows) hb.T = std::max(hb.T, lengths[static_cast<size_t>(i)]);
  hb.ids.assign(static_cast<size_t>(hb.B) * hb.T, 0);
  hb.targets.assign(hb.ids.size(), -1);
  for (int b = 0; b < hb.B; b++) {
    const int i = rows[static_cast<size_t>(b)];
    const int len = lengths[static_cast<size_t>(i)];
    const int32_t* ids = d.sample_ids(i);
    const uint8_t* mask = d.sample_mask(i);
    hb.lengths.push_back(len);
    hb.tokens += len;
    for (int t = 0; t < len; t++) {
      if (ids[t] >= tr.model->config.vocab_size)
        QT_FAIL(ErrorCode::InvalidArgument, d.path + ": sample " + std::to_string(i) + " holds token id " + std::to_string(ids[t]) +
                                                ", outside the model's vocabulary (" + std::to_string(tr.model->config.vocab_size) +
                                                "): the set was compiled with another tokenizer");
      hb.ids[static_cast<size_t>(b) * hb.T + t] = ids[t];
      if (t + 1 < len && mask[t + 1]) {  // position t is scored against token t + 1 (FORMATS.md)
        hb.targets[static_cast<size_t>(b) * hb.T + t] = ids[t + 1];
        hb.count++;
      }
    }
  }
  return hb;
}

void upload_batch(const Model& m, Activations& a, const HostBatch& hb) {
  m.be->upload(a.ids, hb.ids.data(), hb.ids.size() * sizeof(int32_t));
  m.be->upload(a.targets, hb.targets.data(), hb.targets.size() * sizeof(int32_t));
  m.be->upload(a.lengths, hb.lengths.data(), hb.lengths.size() * sizeof(int32_t));
}

int64_t plan_capacity(const BatchList& batches, const std::vector<int>& lengths, int* rows = nullptr, int* len = nullptr) {
  int64_t cap = 0;
  for (const auto& b : batches) {
    int longest = 0;
    for (int32_t i : b) longest = std::max(longest, lengths[static_cast<size_t>(i)]);
    if (static_cast<int64_t>(b.size()) * longest > cap) {
      cap = static_cast<int64_t>(b.size()) * longest;
      if (rows) *rows = static_cast<int>(b.size());
      if (len) *len = longest;
    }
  }
  return cap;
}

// An allocation failed for a batch of B rows x T tokens: say so in words the user can act on. The trainer and
// its memory stay as they were (RAII frees whatever the failed call had allocated).
[[noreturn]] void out_of_memory(const Model& m, const TrainConfig& c, const Error& e, int B, int T) {
  const bool gpu = m.be != &cpu_backend();
  QT_FAIL(ErrorCode::OutOfMemory, std::string(gpu ? "GPU out of memory" : "out of memory") + " at " + std::to_string(B) +
                                      " \xC3\x97 " + std::to_string(T) + " tokens; " +
                                      (c.token_budget_batching ? "lower the token budget" : "lower the batch size") +
                                      " or the maximum length (" + e.what() + ")");
}

}  // namespace

std::unique_ptr<Trainer> create_trainer(const std::shared_ptr<Model>& model, const TrainConfig& config,
                                        const std::string& train_set_path) {
  QT_CHECK(model != nullptr, ErrorCode::InvalidArgument, "create_trainer: no model");
  bind_device(*model);
  validate(config);
  std::unique_ptr<Trainer> tr(new Trainer());
  tr->model = model;
  tr->cfg = config;
  tr->cfg.lora = normalize_lora_config(config.lora);
  tr->data = read_dataset(train_set_path);
  const Dataset& d = tr->data;
  if (d.num_samples == 0) QT_FAIL(ErrorCode::InvalidArgument, train_set_path + ": the training set has no samples");
  for (int32_t id : d.ids)
    if (id >= model->config.vocab_size)
      QT_FAIL(ErrorCode::InvalidArgument, train_set_path + ": token id " + std::to_string(id) + " is outside the model's vocabulary (" +
                                              std::to_string(model->config.vocab_size) + "): the set was compiled with another tokenizer");
  int longest = 0;
  for (int i = 0; i < d.num_samples; i++) {
    tr->lengths.push_back(truncated_length(d, i, tr->cfg, model->config));
    longest = std::max(longest, tr->lengths.back());
  }
  if (tr->cfg.token_budget_batching && tr->cfg.token_budget < longest)
    QT_FAIL(ErrorCode::InvalidArgument, "token_budget (" + std::to_string(tr->cfg.token_budget) + ") is smaller than the longest sample (" +
                                            std::to_string(longest) + " tokens); raise it or set max_length");
  if (tr->cfg.token_budget_batching) tr->packed = token_budget_batches(tr->lengths, tr->cfg);
  tr->plan = epoch_plan(tr->lengths, tr->cfg, tr->packed, 0);

  // capacity: fixed rows -> batch_rows x longest sample (any epoch's shuffle); token budget -> the packing
  int cap_rows = std::min(tr->cfg.batch_rows, d.num_samples), cap_len = longest;
  const int64_t cap = tr->cfg.token_budget_batching ? plan_capacity(tr->packed, tr->lengths, &cap_rows, &cap_len)
                                                    : static_cast<int64_t>(cap_rows) * longest;
  try {
    tr->adapter = create_adapter(model, tr->cfg.lora);
    const size_t P = tr->adapter->layout.num_params;
    for (DeviceBuffer* b : {&tr->grads, &tr->m, &tr->v}) {
      *b = DeviceBuffer(model->be, &model->ledger, MemCategory::Lora, P * sizeof(float));
      model->be->zero(b->get(), b->size());
    }
    if (cap > INT32_MAX) QT_FAIL(ErrorCode::OutOfMemory, "more than 2^31 token rows in one batch");
    alloc_activations(tr->acts, *model, tr->cfg.grad_checkpointing ? ActMode::TrainCheckpointed : ActMode::Train,
                      static_cast<int>(cap), tr->cfg.lora.r, lora_max_in_features(model->config, tr->cfg.lora),
                      lora_on_mlp(tr->cfg.lora));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::OutOfMemory) throw;
    out_of_memory(*model, tr->cfg, e, cap_rows, cap_len);
  }
  return tr;
}

std::shared_ptr<Adapter> trainer_adapter(const Trainer& trainer) { return trainer.adapter; }

int64_t trainer_steps_per_epoch(const Trainer& trainer) {
  return (static_cast<int64_t>(trainer.plan.size()) + trainer.cfg.grad_accum - 1) / trainer.cfg.grad_accum;
}

int64_t trainer_step_count(const Trainer& trainer) { return trainer.step; }

StepMetrics trainer_step(Trainer& tr, CancelToken* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  const Model& m = *tr.model;
  const Backend& be = *m.be;
  check_cancel(cancel);
  bind_device(m);
  const int64_t k = std::min<int64_t>(tr.cfg.grad_accum, static_cast<int64_t>(tr.plan.size()) - tr.cursor);
  std::vector<HostBatch> batches;
  int64_t count = 0;
  StepMetrics sm;
  for (int64_t j = 0; j < k; j++) {
    batches.push_back(make_batch(tr, tr.data, tr.lengths, tr.plan[static_cast<size_t>(tr.cursor + j)]));
    count += batches.back().count;
    sm.tokens += batches.back().tokens;
    sm.padded_tokens += static_cast<int64_t>(batches.back().B) * batches.back().T;
    sm.samples += batches.back().B;
  }
  const float lr = schedule_lr(tr.cfg, tr.step);
  const size_t P = tr.adapter->layout.num_params;
  float* grads = tr.grads.as<float>();
  be.zero(grads, P * sizeof(float));
  const float dloss = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  double loss_sum = 0;
  for (int64_t j = 0; j < k; j++) {
    check_cancel(cancel);
    const HostBatch& hb = batches[static_cast<size_t>(j)];
    try {  // the device may allocate scratch memory on the first steps
      upload_batch(m, tr.acts, hb);
      Pass p;
      p.B = hb.B;
      p.T = hb.T;
      p.use_lengths = true;
      p.training = true;
      p.neftune_alpha = tr.cfg.neftune_alpha;
      p.seed = rng_derive(tr.cfg.seed, 0x6d62u, tr.micro + static_cast<uint64_t>(j));  // "mb"
      model_forward(m, tr.adapter.get(), tr.acts, p, cancel);
      loss_sum += model_loss(m, tr.adapter.get(), tr.acts, p, grads, dloss, cancel);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::OutOfMemory) throw;
      out_of_memory(m, tr.cfg, e, hb.B, hb.T);
    }
  }
  const double norm = std::sqrt(be.sum_squares(grads, P));
  if (!std::isfinite(norm) || !std::isfinite(loss_sum))
    QT_FAIL(ErrorCode::InvalidArgument, "training diverged at step " + std::to_string(tr.step + 1) +
                                            " (the loss or gradients are not finite); lower the learning rate");
  if (tr.cfg.max_grad_norm > 0) {  // torch.nn.utils.clip_grad_norm_
    const double coef = tr.cfg.max_grad_norm / (norm + 1e-6);
    if (coef < 1.0) be.scale(grads, static_cast<float>(coef), P);
  }
  be.adamw_update(tr.adapter->params.as<float>(), grads, tr.m.as<float>(), tr.v.as<float>(), P, lr, tr.cfg.beta1,
                  tr.cfg.beta2, tr.cfg.eps, tr.cfg.weight_decay, tr.step + 1);
  // the step is applied: advance the position (a cancel before this point leaves the trainer unchanged)
  tr.step++;
  tr.cursor += k;
  tr.micro += static_cast<uint64_t>(k);
  if (tr.cursor >= static_cast<int64_t>(tr.plan.size())) {
    tr.epoch++;
    tr.cursor = 0;
    tr.plan = epoch_plan(tr.lengths, tr.cfg, tr.packed, tr.epoch);
  }
  sm.step = tr.step;
  sm.epoch = static_cast<double>(tr.epoch) + static_cast<double>(tr.cursor) / static_cast<double>(tr.plan.size());
  sm.loss = count > 0 ? static_cast<float>(loss_sum / static_cast<double>(count)) : 0.0f;
  sm.lr = lr;
  sm.grad_norm = static_cast<float>(norm);
  sm.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sm;
}

double trainer_evaluate(Trainer& tr, const std::string& set_path, CancelToken* cancel) {
  const Model& m = *tr.model;
  bind_device(m);
  Dataset d = read_dataset(set_path);
  std::vector<int> lengths;
  for (int i = 0; i < d.num_samples; i++) lengths.push_back(truncated_length(d, i, tr.cfg, m.config));
  const int rows = tr.cfg.token_budget_batching ? 1 << 30 : tr.cfg.batch_rows;
  const int longest = lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  const int budget = std::max(tr.cfg.token_budget_batching ? tr.cfg.token_budget : rows * longest, longest);
  BatchList plan = eval_plan(lengths, rows, budget);
  int cap_rows = 0, cap_len = 0;
  const int64_t cap = plan_capacity(plan, lengths, &cap_rows, &cap_len);
  try {
    if (cap > tr.eval_acts.capacity) alloc_activations(tr.eval_acts, m, ActMode::Inference, static_cast<int>(cap), tr.cfg.lora.r,
                                                         lora_max_in_features(m.config, tr.cfg.lora));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::OutOfMemory) throw;
    out_of_memory(m, tr.cfg, e, cap_rows, cap_len);
  }
  double sum = 0;
  int64_t count = 0;
  for (const auto& rows_ : plan) {
    check_cancel(cancel);
    HostBatch hb = make_batch(tr, d, lengths, rows_);
    if (hb.count == 0) continue;
    upload_batch(m, tr.eval_acts, hb);
    Pass p;
    p.B = hb.B;
    p.T = hb.T;
    p.use_lengths = true;
    model_forward(m, tr.adapter.get(), tr.eval_acts, p, cancel);
    sum += model_loss(m, tr.adapter.get(), tr.eval_acts, p, nullptr, 0.0f, cancel);
    count += hb.count;
  }
  if (count == 0) QT_FAIL(ErrorCode::InvalidArgument, set_path + ": the set has no target tokens to evaluate");
  return sum / static_cast<double>(count);
}

// ---- checkpoints ------------------------------------------------------------------------------------------

namespace {

const char* const kStateFile = "trainer_state.json";
const char* const kOptimizerFile = "optimizer.safetensors";

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void trainer_save_checkpoint(const Trainer& tr, const std::string& folder) {
  using json::Value;
  AtomicFolder out(folder, {kPeftConfigFile, kPeftWeightsFile, kStateFile, kOptimizerFile, "README.md"});
  bind_device(*tr.model);
  write_peft_files(*tr.adapter, out.temp(), PeftMeta{});

  // AdamW moments and the current epoch's data order
  const size_t P = tr.adapter->layout.num_params;
  std::vector<float> m(P), v(P);
  tr.model->be->download(m.data(), tr.m.get(), P * sizeof(float));
  tr.model->be->download(v.data(), tr.v.get(), P * sizeof(float));
  std::vector<int32_t> order, starts{0};
  for (const auto& b : tr.plan) {
    order.insert(order.end(), b.begin(), b.end());
    starts.push_back(static_cast<int32_t>(order.size()));
  }
  write_safetensors(out.file(kOptimizerFile),
                    {{"adamw.exp_avg", "F32", {static_cast<int64_t>(P)}, m.data()},
                     {"adamw.exp_avg_sq", "F32", {static_cast<int64_t>(P)}, v.data()},
                     {"data.order", "I32", {static_cast<int64_t>(order.size())}, order.data()},
                     {"data.batch_starts", "I32", {static_cast<int64_t>(starts.size())}, starts.data()}});

  Value targets = Value::new_array();
  for (const auto& t : tr.cfg.lora.targets) targets.push(Value::from_string(t));
  Value st = Value::new_object();
  st.set("format", Value::from_string("qatuner-checkpoint"))
      .set("version", Value::from_int(1))
      .set("engine_version", Value::from_string(engine_version()))
      .set("step", Value::from_int(tr.step))
      .set("epoch", Value::from_int(tr.epoch))
      .set("batch_cursor", Value::from_int(tr.cursor))
      .set("micro_batches", Value::from_string(std::to_string(tr.micro)))
      .set("seed", Value::from_string(std::to_string(tr.cfg.seed)))
      .set("num_params", Value::from_int(static_cast<int64_t>(P)))
      .set("lora", Value::new_object()
                       .set("r", Value::from_int(tr.cfg.lora.r))
                       .set("alpha", Value::from_float(tr.cfg.lora.alpha))
                       .set("targets", std::move(targets)))
      .set("dataset", Value::new_object()
                          .set("num_samples", Value::from_int(tr.data.num_samples))
                          .set("num_tokens", Value::from_int(static_cast<int64_t>(tr.data.num_tokens)))
                          .set("fingerprint", Value::from_string(hex64(tr.data.fingerprint))));
  write_file(out.file(kStateFile), json::dump(st) + "\n");
  out.commit();
}

void trainer_load_checkpoint(Trainer& tr, const std::string& folder) {
  bind_device(*tr.model);
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::u8path(folder), ec))
    QT_FAIL(ErrorCode::NotFound, folder + ": checkpoint folder not found");
  const std::string state_path = folder + "/" + kStateFile;
  json::Value st = json::parse(read_text_file(state_path), state_path);
  auto bad = [&](const std::string& why) { QT_FAIL(ErrorCode::BadFile, state_path + ": " + why); };
  auto get_int = [&](const json::Value& o, const char* k) {
    const json::Value* v = o.find(k);
    if (!v || !v->is_int || v->integer < 0) bad(std::string("field '") + k + "' missing or not a non-negative integer");
    return v->integer;
  };
  auto get_u64_str = [&](const json::Value& o, const char* k) {
    const json::Value* v = o.find(k);
    if (!v || !v->is_string() || v->string.empty() || v->string.find_first_not_of("0123456789") != std::string::npos)
      bad(std::string("field '") + k + "' missing or not a decimal string");
    return std::stoull(v->string);
  };
  const json::Value* fmt = st.find("format");
  if (!fmt || !fmt->is_string() || fmt->string != "qatuner-checkpoint") bad("not a QA Tuner checkpoint");
  if (get_int(st, "version") != 1) QT_FAIL(ErrorCode::Unsupported, state_path + ": checkpoint version not supported");
  const json::Value* lora = st.find("lora");
  const json::Value* ds = st.find("dataset");
  if (!lora || !lora->is_object() || !ds || !ds->is_object()) bad("missing 'lora' or 'dataset'");

  // the checkpoint must belong to this trainer's LoRA shapes and training set
  const json::Value* fp = ds->find("fingerprint");
  if (!fp || !fp->is_string()) bad("missing dataset fingerprint");
  if (fp->string != hex64(tr.data.fingerprint))
    QT_FAIL(ErrorCode::InvalidArgument, folder + ": the checkpoint was trained on another training set; resume with the same set");
  const LoraConfig ck = read_peft_config(folder);
  if (ck.r != tr.cfg.lora.r || ck.targets != tr.cfg.lora.targets)
    QT_FAIL(ErrorCode::InvalidArgument, folder + ": the checkpoint's LoRA (r=" + std::to_string(ck.r) +
                                            ") does not match this trainer's; create the trainer with the checkpoint's LoRA settings");
  const size_t P = tr.adapter->layout.num_params;
  if (static_cast<size_t>(get_int(st, "num_params")) != P) bad("num_params does not match the adapter");
  const uint64_t seed = get_u64_str(st, "seed");
  if (seed != tr.cfg.seed)
    QT_FAIL(ErrorCode::InvalidArgument, folder + ": the checkpoint used seed " + std::to_string(seed) + "; resume with the same seed");

  // read everything first, then commit to the trainer (a bad file leaves it unchanged)
  const std::string opt_path = folder + "/" + kOptimizerFile;
  SafetensorsFile opt(opt_path);
  auto tensor = [&](const char* name, const char* dtype) {
    const StTensor* t = opt.find(name);
    if (!t || t->dtype != dtype || t->shape.size() != 1) QT_FAIL(ErrorCode::BadFile, opt_path + ": tensor '" + name + "' missing or malformed");
    return t;
  };
  const StTensor* tm = tensor("adamw.exp_avg", "F32");
  const StTensor* tv = tensor("adamw.exp_avg_sq", "F32");
  const StTensor* to = tensor("data.order", "I32");
  const StTensor* ts = tensor("data.batch_starts", "I32");
  if (static_cast<size_t>(tm->numel) != P || static_cast<size_t>(tv->numel) != P) QT_FAIL(ErrorCode::ShapeMismatch, opt_path + ": AdamW state size does not match the adapter");
  std::vector<int32_t> order(static_cast<size_t>(to->numel)), starts(static_cast<size_t>(ts->numel));
  std::memcpy(order.data(), opt.data(*to), to->nbytes);
  std::memcpy(starts.data(), opt.data(*ts), ts->nbytes);
  BatchList plan;
  if (starts.empty() || starts[0] != 0 || starts.back() != static_cast<int32_t>(order.size())) QT_FAIL(ErrorCode::BadFile, opt_path + ": bad data order");
  for (size_t b = 0; b + 1 < starts.size(); b++) {
    if (starts[b + 1] <= starts[b]) QT_FAIL(ErrorCode::BadFile, opt_path + ": bad data order");
    plan.emplace_back(order.begin() + starts[b], order.begin() + starts[b + 1]);
  }
  for (int32_t i : order)
    if (i < 0 || i >= tr.data.num_samples) QT_FAIL(ErrorCode::BadFile, opt_path + ": data order names a sample outside the set");
  const int64_t cursor = get_int(st, "batch_cursor");
  if (plan.empty() || cursor >= static_cast<int64_t>(plan.size())) bad("batch_cursor outside the data order");
  // the batches of the saved order must fit the activation capacity (same batching settings)
  if (plan_capacity(plan, tr.lengths) > tr.acts.capacity)
    QT_FAIL(ErrorCode::InvalidArgument, folder + ": the checkpoint's batches are larger than this trainer's; use the same batching settings");

  auto fresh = make_empty_adapter(tr.model, tr.cfg.lora);
  read_peft_weights(*fresh, folder);
  const Backend& be = *tr.model->be;
  be.copy(tr.adapter->params.get(), fresh->params.get(), P * sizeof(float));
  be.upload(tr.m.get(), opt.data(*tm), P * sizeof(float));
  be.upload(tr.v.get(), opt.data(*tv), P * sizeof(float));
  tr.step = get_int(st, "step");
  tr.epoch = get_int(st, "epoch");
  tr.cursor = cursor;
  tr.micro = get_u64_str(st, "micro_batches");
  tr.plan = std::move(plan);
}

}  // namespace qt
