// Model configuration: config.json of LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM into
// ModelConfig (GQA, head_dim, Qwen2's q/k/v biases, rope_theta, rope scaling "llama3"/"linear" in both the
// transformers 4 (`rope_scaling`) and 5 (`rope_parameters`) spellings, tied embeddings, rms_norm_eps), the
// expected tensor names/shapes, and inspect_model (config + safetensors headers, no weights).
// Defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config where a field may be absent.
// Mistral's and Qwen2's sliding windows are ignored (no effect below the window, thousands of tokens).
#include "config.h"

#include <cmath>
#include <filesystem>

#include "json.h"
#include "safetensors.h"

namespace qt {

namespace {

struct Fields {
  const json::Value& root;
  const std::string& what;

  const json::Value* get(const std::string& key) const {
    const json::Value* v = root.find(key);
    return (v && !v->is_null()) ? v : nullptr;
  }
  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    QT_FAIL(ErrorCode::BadFile, what + ": field '" + key + "' " + why);
  }
  int req_int(const std::string& key) const {
    const json::Value* v = get(key);
    if (!v) bad(key, "is missing");
    return as_int(key, *v);
  }
  int opt_int(const std::string& key, int def) const {
    const json::Value* v = get(key);
    return v ? as_int(key, *v) : def;
  }
  int as_int(const std::string& key, const json::Value& v) const {
    if (!v.is_number() || !v.is_int || v.integer <= 0 || v.integer > 1000000000) bad(key, "must be a positive integer");
    return static_cast<int>(v.integer);
  }
  double opt_num(const std::string& key, double def) const {
    const json::Value* v = get(key);
    if (!v) return def;
    if (!v->is_number()) bad(key, "must be a number");
    return v->number;
  }
  bool opt_bool(const std::string& key, bool def) const {
    const json::Value* v = get(key);
    if (!v) return def;
    if (!v->is_bool()) bad(key, "must be true or false");
    return v->boolean;
  }
  std::string opt_str(const std::string& key, const std::string& def) const {
    const json::Value* v = get(key);
    if (!v) return def;
    if (!v->is_string()) bad(key, "must be a string");
    return v->string;
  }
};

void parse_rope(ModelConfig& c, const json::Value& root, const std::string& what) {
  Fields f{root, what};
  c.rope_theta = static_cast<float>(f.opt_num("rope_theta", 10000.0));
  // transformers 5 writes rope_parameters {rope_type, rope_theta, factor, ...}; 4.x writes rope_scaling.
  const json::Value* rs = f.get("rope_parameters");
  std::string key = "rope_parameters";
  if (!rs) {
    rs = f.get("rope_scaling");
    key = "rope_scaling";
  }
  if (!rs) return;
  if (!rs->is_object()) f.bad(key, "must be an object");
  Fields r{*rs, what};
  if (r.get("rope_theta")) c.rope_theta = static_cast<float>(r.opt_num("rope_theta", c.rope_theta));
  std::string type = r.opt_str("rope_type", r.opt_str("type", "default"));
  auto need = [&](const char* k) {
    if (!r.get(k)) f.bad(key + "." + k, "is missing (needed by rope type '" + type + "')");
    return r.opt_num(k, 0);
  };
  if (type == "default") {
    c.rope_scaling.type = "none";
  } else if (type == "linear") {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = static_cast<float>(need("factor"));
  } else if (type == "llama3") {
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = static_cast<float>(need("factor"));
    c.rope_scaling.low_freq_factor = static_cast<float>(need("low_freq_factor"));
    c.rope_scaling.high_freq_factor = static_cast<float>(need("high_freq_factor"));
    c.rope_scaling.original_max_position = static_cast<int>(need("original_max_position_embeddings"));
    if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor) || c.rope_scaling.original_max_position <= 0)
      f.bad(key, "has inconsistent llama3 factors");
  } else {
    QT_FAIL(ErrorCode::Unsupported, what + ": rope scaling type '" + type + "' is not supported (supported: llama3, linear)");
  }
  if (!(c.rope_scaling.factor > 0)) f.bad(key + ".factor", "must be > 0");
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& what) {
  json::Value root = json::parse(text, what);
  if (!root.is_object()) QT_FAIL(ErrorCode::BadFile, what + ": not a JSON object");
  Fields f{root, what};
  ModelConfig c;

  // Architecture: architectures[0], else model_type.
  if (const json::Value* a = f.get("architectures")) {
    if (!a->is_array() || a->array.empty() || !a->array[0].is_string()) f.bad("architectures", "must be a list of names");
    c.architecture = a->array[0].string;
  } else {
    std::string mt = f.opt_str("model_type", "");
    if (mt == "llama") c.architecture = "LlamaForCausalLM";
    else if (mt == "mistral") c.architecture = "MistralForCausalLM";
    else if (mt == "qwen2") c.architecture = "Qwen2ForCausalLM";
    else if (mt.empty()) f.bad("architectures", "is missing");
    else c.architecture = mt;
  }
  int default_max_pos = 2048;
  if (c.architecture == "LlamaForCausalLM") {
    c.family = "llama";
  } else if (c.architecture == "MistralForCausalLM") {
    c.family = "mistral";
    default_max_pos = 4096 * 32;
  } else if (c.architecture == "Qwen2ForCausalLM") {
    c.family = "qwen2";
    default_max_pos = 32768;
  } else {
    QT_FAIL(ErrorCode::Unsupported, what + ": architecture '" + c.architecture +
                                        "' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  }

  c.vocab_size = f.req_int("vocab_size");
  c.hidden_size = f.req_int("hidden_size");
  c.intermediate_size = f.req_int("intermediate_size");
  c.num_layers = f.req_int("num_hidden_layers");
  c.num_heads = f.req_int("num_attention_heads");
  c.num_kv_heads = f.opt_int("num_key_value_heads", c.num_heads);
  if (f.get("head_dim")) {
    c.head_dim = f.req_int("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      f.bad("num_attention_heads", "(" + std::to_string(c.num_heads) + ") must divide hidden_size (" +
                                       std::to_string(c.hidden_size) + ") when head_dim is not given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    f.bad("num_key_value_heads", "(" + std::to_string(c.num_kv_heads) + ") must divide num_attention_heads (" +
                                     std::to_string(c.num_heads) + ")");
  if (c.head_dim % 2 != 0) f.bad("head_dim", "must be even for rotary embeddings");
  c.max_position = f.opt_int("max_position_embeddings", default_max_pos);
  c.rms_norm_eps = static_cast<float>(f.opt_num("rms_norm_eps", 1e-6));
  if (!(c.rms_norm_eps > 0)) f.bad("rms_norm_eps", "must be > 0");
  c.tie_embeddings = f.opt_bool("tie_word_embeddings", false);
  c.torch_dtype = f.opt_str("torch_dtype", f.opt_str("dtype", ""));

  std::string act = f.opt_str("hidden_act", "silu");
  if (act != "silu") QT_FAIL(ErrorCode::Unsupported, what + ": hidden_act '" + act + "' is not supported (only silu)");
  if (c.family == "qwen2") {
    c.attention_bias = true;  // Qwen2: q/k/v projections always have biases, o_proj none
  } else {
    if (f.opt_bool("attention_bias", false))
      QT_FAIL(ErrorCode::Unsupported, what + ": attention_bias true is not supported for " + c.architecture);
    if (f.opt_bool("mlp_bias", false))
      QT_FAIL(ErrorCode::Unsupported, what + ": mlp_bias true is not supported for " + c.architecture);
  }
  parse_rope(c, root, what);
  if (!(c.rope_theta > 0)) f.bad("rope_theta", "must be > 0");
  return c;
}

ModelConfig read_model_config(const std::string& folder) {
  const std::string path = folder + "/config.json";
  return parse_model_config(read_text_file(path), path);
}

// ---- targets and expected tensors ----------------------------------------------------------------------

const char* target_name(int t) {
  static const char* const names[NUM_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return (t >= 0 && t < NUM_TARGETS) ? names[t] : "?";
}

const char* target_module(int t) { return t <= TO ? "self_attn" : "mlp"; }

int target_from_name(const std::string& s) {
  static const char* const short_names[NUM_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
  for (int t = 0; t < NUM_TARGETS; t++)
    if (s == target_name(t) || s == short_names[t]) return t;
  return -1;
}

int target_in_features(const ModelConfig& c, int t) {
  switch (t) {
    case TO: return c.num_heads * c.head_dim;
    case TDOWN: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

int target_out_features(const ModelConfig& c, int t) {
  switch (t) {
    case TQ: return c.num_heads * c.head_dim;
    case TK:
    case TV: return c.num_kv_heads * c.head_dim;
    case TO: return c.hidden_size;
    case TGATE:
    case TUP: return c.intermediate_size;
    default: return c.hidden_size;  // down
  }
}

std::string layer_weight_name(int layer, int t) {
  return "model.layers." + std::to_string(layer) + "." + target_module(t) + "." + target_name(t) + ".weight";
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out;
  const int64_t C = c.hidden_size;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, C}});
  for (int l = 0; l < c.num_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {C}});
    for (int t = 0; t < NUM_TARGETS; t++) {
      out.push_back({layer_weight_name(l, t), {target_out_features(c, t), target_in_features(c, t)}});
      if (c.attention_bias && t <= TV)
        out.push_back({p + "self_attn." + target_name(t) + ".bias", {target_out_features(c, t)}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {C}});
  }
  out.push_back({"model.norm.weight", {C}});
  if (!c.tie_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, C}});
  return out;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

ModelInspection inspect_model(const std::string& folder) {
  ModelInspection r;
  r.config = read_model_config(folder);
  SafetensorsSet set(folder);
  for (const auto& ref : set.all()) {
    const StTensor& t = *ref.tensor;
    const std::string& n = t.name;
    if (n.find(".absmax") != std::string::npos || n.find("quant_state") != std::string::npos ||
        n.find(".quant_map") != std::string::npos)
      QT_FAIL(ErrorCode::Unsupported, ref.file->path() + ": holds pre-quantized (bitsandbytes) tensors such as '" + n +
                                          "'; use the original 16-bit model folder (the engine quantizes on load)");
    TensorInfo info;
    info.name = n;
    info.dtype = t.dtype;
    info.shape = t.shape;
    info.file = std::filesystem::u8path(ref.file->path()).filename().u8string();
    r.tensors.push_back(std::move(info));
    r.parameter_count += static_cast<uint64_t>(t.numel);
    r.weight_bytes += t.nbytes;
  }
  for (const auto& e : expected_tensors(r.config)) {
    auto ref = set.find(e.name);
    if (!ref.tensor) QT_FAIL(ErrorCode::NotFound, folder + ": tensor '" + e.name + "' is missing from the safetensors files");
    if (ref.tensor->shape != e.shape)
      QT_FAIL(ErrorCode::ShapeMismatch, ref.file->path() + ": tensor '" + e.name + "' has shape " + shape_str(ref.tensor->shape) +
                                            " but config.json implies " + shape_str(e.shape));
  }
  return r;
}

}  // namespace qt
