// JS <-> engine struct conversions (see convert.h).
#include "convert.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace qta {

namespace {

bool Present(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

Napi::Object ObjectArg(const Napi::Value& v, const char* what, bool allow_missing) {
  if ((v.IsUndefined() || v.IsNull()) && allow_missing) return Napi::Object::New(v.Env());
  if (!v.IsObject() || v.IsArray()) throw InvalidArg(std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

std::string Field(const char* what, const char* key) { return std::string(what) + "." + key; }

double NumberField(const Napi::Object& o, const char* what, const char* key, double fallback) {
  if (!Present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw InvalidArg(Field(what, key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw InvalidArg(Field(what, key) + " must be a finite number");
  return d;
}

int64_t IntField(const Napi::Object& o, const char* what, const char* key, int64_t fallback) {
  if (!Present(o, key)) return fallback;
  return IntFrom(o.Get(key), Field(what, key).c_str(), std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
}

uint64_t U64Field(const Napi::Object& o, const char* what, const char* key, uint64_t fallback) {
  if (!Present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw InvalidArg(Field(what, key) + " must fit in an unsigned 64-bit integer");
    return x;
  }
  if (!v.IsNumber()) throw InvalidArg(Field(what, key) + " must be a non-negative integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) throw InvalidArg(Field(what, key) + " must be a non-negative integer");
  return static_cast<uint64_t>(d);
}

bool BoolField(const Napi::Object& o, const char* what, const char* key, bool fallback) {
  if (!Present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw InvalidArg(Field(what, key) + " must be true or false");
  return v.As<Napi::Boolean>().Value();
}

std::string StringField(const Napi::Object& o, const char* what, const char* key, const std::string& fallback) {
  if (!Present(o, key)) return fallback;
  return StringFrom(o.Get(key), Field(what, key).c_str());
}

std::vector<std::string> StringsField(const Napi::Object& o, const char* what, const char* key, const std::vector<std::string>& fallback) {
  if (!Present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw InvalidArg(Field(what, key) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(StringFrom(a.Get(i), Field(what, key).c_str()));
  return out;
}

}  // namespace

std::string StringFrom(const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw InvalidArg(std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

int64_t IntFrom(const Napi::Value& v, const char* what, int64_t min, int64_t max) {
  if (!v.IsNumber()) throw InvalidArg(std::string(what) + " must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throw InvalidArg(std::string(what) + " must be an integer");
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw InvalidArg(std::string(what) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return static_cast<int64_t>(d);
}

qt::LoadOptions LoadOptionsFrom(const Napi::Value& v) {
  const char* w = "options";
  Napi::Object o = ObjectArg(v, w, false);
  qt::LoadOptions out;
  if (!Present(o, "folder")) throw InvalidArg("options.folder is required (a Hugging Face model folder)");
  out.folder = StringField(o, w, "folder", "");
  out.device = StringField(o, w, "device", out.device);
  std::string quant = StringField(o, w, "quant", out.quant == qt::Quant::NF4 ? "nf4" : "none");
  if (quant == "nf4") out.quant = qt::Quant::NF4;
  else if (quant == "none") out.quant = qt::Quant::None;
  else throw InvalidArg("options.quant must be \"nf4\" or \"none\"");
  out.double_quant = BoolField(o, w, "doubleQuant", out.double_quant);
  out.compute_dtype = StringField(o, w, "computeDtype", out.compute_dtype);
  return out;
}

qt::LoraConfig LoraConfigFrom(const Napi::Value& v, const char* what) {
  Napi::Object o = ObjectArg(v, what, true);
  qt::LoraConfig c;
  c.r = static_cast<int>(IntField(o, what, "r", c.r));
  c.alpha = static_cast<float>(NumberField(o, what, "alpha", c.alpha));
  c.dropout = static_cast<float>(NumberField(o, what, "dropout", c.dropout));
  c.targets = StringsField(o, what, "targets", c.targets);
  c.seed = U64Field(o, what, "seed", c.seed);
  return c;
}

qt::TrainConfig TrainConfigFrom(const Napi::Value& v) {
  const char* w = "config";
  Napi::Object o = ObjectArg(v, w, false);
  qt::TrainConfig c;
  if (Present(o, "lora")) c.lora = LoraConfigFrom(o.Get("lora"), "config.lora");
  c.lr = static_cast<float>(NumberField(o, w, "lr", c.lr));
  c.beta1 = static_cast<float>(NumberField(o, w, "beta1", c.beta1));
  c.beta2 = static_cast<float>(NumberField(o, w, "beta2", c.beta2));
  c.eps = static_cast<float>(NumberField(o, w, "eps", c.eps));
  c.weight_decay = static_cast<float>(NumberField(o, w, "weightDecay", c.weight_decay));
  c.max_grad_norm = static_cast<float>(NumberField(o, w, "maxGradNorm", c.max_grad_norm));
  c.grad_accum = static_cast<int>(IntField(o, w, "gradAccum", c.grad_accum));
  std::string schedule = StringField(o, w, "schedule", "cosine_with_restarts");
  if (schedule == "cosine_with_restarts") c.schedule = qt::Schedule::CosineWithRestarts;
  else if (schedule == "cosine") c.schedule = qt::Schedule::Cosine;
  else if (schedule == "linear") c.schedule = qt::Schedule::Linear;
  else if (schedule == "constant") c.schedule = qt::Schedule::Constant;
  else throw InvalidArg("config.schedule must be one of cosine_with_restarts, cosine, linear, constant");
  c.warmup_steps = static_cast<int>(IntField(o, w, "warmupSteps", c.warmup_steps));
  c.total_steps = static_cast<int>(IntField(o, w, "totalSteps", c.total_steps));
  c.num_cycles = static_cast<float>(NumberField(o, w, "numCycles", c.num_cycles));
  c.token_budget_batching = BoolField(o, w, "tokenBudgetBatching", c.token_budget_batching);
  c.batch_rows = static_cast<int>(IntField(o, w, "batchRows", c.batch_rows));
  c.token_budget = static_cast<int>(IntField(o, w, "tokenBudget", c.token_budget));
  c.group_by_length = BoolField(o, w, "groupByLength", c.group_by_length);
  c.shuffle = BoolField(o, w, "shuffle", c.shuffle);
  c.max_length = static_cast<int>(IntField(o, w, "maxLength", c.max_length));
  c.neftune_alpha = static_cast<float>(NumberField(o, w, "neftuneAlpha", c.neftune_alpha));
  c.grad_checkpointing = BoolField(o, w, "gradCheckpointing", c.grad_checkpointing);
  c.seed = U64Field(o, w, "seed", c.seed);
  return c;
}

qt::SamplingConfig SamplingFrom(const Napi::Value& v, int vocab) {
  const char* w = "sampling";
  Napi::Object o = ObjectArg(v, w, true);
  qt::SamplingConfig s;
  s.max_new_tokens = static_cast<int>(IntField(o, w, "maxNewTokens", s.max_new_tokens));
  s.temperature = static_cast<float>(NumberField(o, w, "temperature", s.temperature));
  s.top_k = static_cast<int>(IntField(o, w, "topK", s.top_k));
  s.top_p = static_cast<float>(NumberField(o, w, "topP", s.top_p));
  s.repetition_penalty = static_cast<float>(NumberField(o, w, "repetitionPenalty", s.repetition_penalty));
  if (Present(o, "stopIds")) s.stop_ids = IdsFrom(o.Get("stopIds"), vocab, "sampling.stopIds");
  s.seed = U64Field(o, w, "seed", s.seed);
  return s;
}

qt::PeftMeta PeftMetaFrom(const Napi::Value& v) {
  Napi::Object o = ObjectArg(v, "meta", true);
  qt::PeftMeta m;
  m.base_model_name_or_path = StringField(o, "meta", "baseModelNameOrPath", "");
  return m;
}

std::vector<int32_t> IdsFrom(const Napi::Value& v, int vocab, const char* what) {
  std::vector<int32_t> ids;
  auto check = [&](double d, size_t i) {
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d >= vocab) {
      throw InvalidArg(std::string(what) + "[" + std::to_string(i) + "] = " + (std::isfinite(d) ? std::to_string(static_cast<int64_t>(d)) : "NaN") +
                       " is not a token id of this model (0.." + std::to_string(vocab - 1) + ")");
    }
    return static_cast<int32_t>(d);
  };
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_int32_array) throw InvalidArg(std::string(what) + " must be an Int32Array or an array of integers");
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    ids.reserve(a.ElementLength());
    for (size_t i = 0; i < a.ElementLength(); i++) ids.push_back(check(a[i], i));
    return ids;
  }
  if (!v.IsArray()) throw InvalidArg(std::string(what) + " must be an Int32Array or an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  ids.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) throw InvalidArg(std::string(what) + "[" + std::to_string(i) + "] must be an integer");
    ids.push_back(check(x.As<Napi::Number>().DoubleValue(), i));
  }
  return ids;
}

// ---- to JS ---------------------------------------------------------------------------------------------

static Napi::Number Num(Napi::Env env, double x) { return Napi::Number::New(env, x); }

Napi::Object ToJs(Napi::Env env, const qt::DeviceInfo& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("backend", d.backend);
  o.Set("index", Num(env, d.index));
  o.Set("name", d.name);
  o.Set("totalBytes", Num(env, static_cast<double>(d.total_bytes)));
  o.Set("freeBytes", Num(env, static_cast<double>(d.free_bytes)));
  o.Set("ccMajor", Num(env, d.cc_major));
  o.Set("ccMinor", Num(env, d.cc_minor));
  o.Set("bf16", Napi::Boolean::New(env, d.bf16));
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::ModelConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("family", c.family);
  o.Set("vocabSize", Num(env, c.vocab_size));
  o.Set("hiddenSize", Num(env, c.hidden_size));
  o.Set("intermediateSize", Num(env, c.intermediate_size));
  o.Set("numLayers", Num(env, c.num_layers));
  o.Set("numHeads", Num(env, c.num_heads));
  o.Set("numKvHeads", Num(env, c.num_kv_heads));
  o.Set("headDim", Num(env, c.head_dim));
  o.Set("maxPosition", Num(env, c.max_position));
  o.Set("ropeTheta", Num(env, c.rope_theta));
  o.Set("rmsNormEps", Num(env, c.rms_norm_eps));
  o.Set("tieEmbeddings", Napi::Boolean::New(env, c.tie_embeddings));
  o.Set("attentionBias", Napi::Boolean::New(env, c.attention_bias));
  Napi::Object rs = Napi::Object::New(env);
  rs.Set("type", c.rope_scaling.type);
  rs.Set("factor", Num(env, c.rope_scaling.factor));
  rs.Set("lowFreqFactor", Num(env, c.rope_scaling.low_freq_factor));
  rs.Set("highFreqFactor", Num(env, c.rope_scaling.high_freq_factor));
  rs.Set("originalMaxPosition", Num(env, c.rope_scaling.original_max_position));
  o.Set("ropeScaling", rs);
  o.Set("torchDtype", c.torch_dtype);
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::ModelInspection& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("config", ToJs(env, m.config));
  Napi::Array tensors = Napi::Array::New(env, m.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); i++) {
    const qt::TensorInfo& t = m.tensors[i];
    Napi::Object to = Napi::Object::New(env);
    to.Set("name", t.name);
    to.Set("dtype", t.dtype);
    Napi::Array shape = Napi::Array::New(env, t.shape.size());
    for (size_t j = 0; j < t.shape.size(); j++) shape.Set(static_cast<uint32_t>(j), Num(env, static_cast<double>(t.shape[j])));
    to.Set("shape", shape);
    to.Set("file", t.file);
    tensors.Set(static_cast<uint32_t>(i), to);
  }
  o.Set("tensors", tensors);
  o.Set("parameterCount", Num(env, static_cast<double>(m.parameter_count)));
  o.Set("weightBytes", Num(env, static_cast<double>(m.weight_bytes)));
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::DatasetInfo& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("numSamples", Num(env, d.num_samples));
  o.Set("numTokens", Num(env, static_cast<double>(d.num_tokens)));
  o.Set("numTargetTokens", Num(env, static_cast<double>(d.num_target_tokens)));
  o.Set("maxLength", Num(env, d.max_length));
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::MemoryReport& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("weightsBytes", Num(env, static_cast<double>(m.weights_bytes)));
  o.Set("loraBytes", Num(env, static_cast<double>(m.lora_bytes)));
  o.Set("activationsBytes", Num(env, static_cast<double>(m.activations_bytes)));
  o.Set("deviceFreeBytes", Num(env, static_cast<double>(m.device_free_bytes)));
  o.Set("deviceTotalBytes", Num(env, static_cast<double>(m.device_total_bytes)));
  o.Set("peakBytes", Num(env, static_cast<double>(m.peak_bytes)));
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::LoraConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("r", Num(env, c.r));
  o.Set("alpha", Num(env, c.alpha));
  o.Set("dropout", Num(env, c.dropout));
  Napi::Array t = Napi::Array::New(env, c.targets.size());
  for (size_t i = 0; i < c.targets.size(); i++) t.Set(static_cast<uint32_t>(i), c.targets[i]);
  o.Set("targets", t);
  o.Set("seed", Num(env, static_cast<double>(c.seed)));
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::StepMetrics& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", Num(env, static_cast<double>(m.step)));
  o.Set("epoch", Num(env, m.epoch));
  o.Set("loss", Num(env, m.loss));
  o.Set("lr", Num(env, m.lr));
  o.Set("gradNorm", Num(env, m.grad_norm));
  o.Set("tokens", Num(env, static_cast<double>(m.tokens)));
  o.Set("paddedTokens", Num(env, static_cast<double>(m.padded_tokens)));
  o.Set("samples", Num(env, m.samples));
  o.Set("seconds", Num(env, m.seconds));
  return o;
}

Napi::Object ToJs(Napi::Env env, const qt::GenerateResult& r) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array tokens = Napi::Array::New(env, r.tokens.size());
  for (size_t i = 0; i < r.tokens.size(); i++) tokens.Set(static_cast<uint32_t>(i), Num(env, r.tokens[i]));
  o.Set("tokens", tokens);
  const char* finish = r.finish == qt::FinishReason::Stop ? "stop" : r.finish == qt::FinishReason::Length ? "length" : "cancelled";
  o.Set("finish", finish);
  o.Set("promptSeconds", Num(env, r.prompt_seconds));
  o.Set("decodeSeconds", Num(env, r.decode_seconds));
  return o;
}

Napi::Float32Array ToJs(Napi::Env env, const std::vector<float>& v) {
  // A copy into a V8-owned buffer: external buffers are not allowed in Electron's V8 sandbox.
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

}  // namespace qta
