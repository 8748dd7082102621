// Export and import of LoRA adapters in the PEFT format, so that
//   PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)
// loads what we train, and we apply adapters trained by PEFT. Tensors are written as F32 (our master
// weights); F16/BF16 adapters are accepted on import. Folders are written atomically (temp + rename).
#include "peft.h"

#include <filesystem>

#include "files.h"
#include "json.h"
#include "safetensors.h"

namespace qt {

const char* const kPeftConfigFile = "adapter_config.json";
const char* const kPeftWeightsFile = "adapter_model.safetensors";

std::string peft_key(int layer, int target, bool is_b) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + target_module(target) + "." +
         target_name(target) + (is_b ? ".lora_B.weight" : ".lora_A.weight");
}

void write_peft_files(const Adapter& ad, const std::string& dir, const PeftMeta& meta) {
  using json::Value;
  Value targets = Value::new_array();
  for (const auto& t : ad.config.targets) targets.push(Value::from_string(t));
  Value cfg = Value::new_object();
  cfg.set("peft_type", Value::from_string("LORA"))
      .set("task_type", Value::from_string("CAUSAL_LM"))
      .set("base_model_name_or_path", Value::from_string(meta.base_model_name_or_path))
      .set("revision", Value::null())
      .set("inference_mode", Value::from_bool(true))
      .set("r", Value::from_int(ad.config.r))
      .set("lora_alpha", Value::from_float(ad.config.alpha))
      .set("lora_dropout", Value::from_float(ad.config.dropout))
      .set("target_modules", std::move(targets))
      .set("bias", Value::from_string("none"))
      .set("fan_in_fan_out", Value::from_bool(false))
      .set("use_rslora", Value::from_bool(false))
      .set("use_dora", Value::from_bool(false))
      .set("init_lora_weights", Value::from_bool(true))
      .set("modules_to_save", Value::null())
      .set("layers_to_transform", Value::null())
      .set("layers_pattern", Value::null())
      .set("rank_pattern", Value::new_object())
      .set("alpha_pattern", Value::new_object());
  write_file(dir + "/" + kPeftConfigFile, json::dump(cfg) + "\n");

  std::vector<float> host(ad.layout.num_params);
  ad.model->be->download(host.data(), ad.params.get(), host.size() * sizeof(float));
  std::vector<StWriteTensor> tensors;
  const int64_t R = ad.config.r;
  for (size_t l = 0; l < ad.layout.slots.size(); l++)
    for (int t = 0; t < NUM_TARGETS; t++) {
      const LoraSlot& s = ad.layout.slots[l][static_cast<size_t>(t)];
      if (!s.on) continue;
      tensors.push_back({peft_key(static_cast<int>(l), t, false), "F32", {R, s.in}, host.data() + s.a});
      tensors.push_back({peft_key(static_cast<int>(l), t, true), "F32", {s.out, R}, host.data() + s.b});
    }
  write_safetensors(dir + "/" + kPeftWeightsFile, tensors, {{"format", "pt"}});
}

void save_peft_adapter(const Adapter& adapter, const std::string& folder, const PeftMeta& meta) {
  bind_device(*adapter.model);
  AtomicFolder out(folder, {kPeftConfigFile, kPeftWeightsFile, "README.md"});
  write_peft_files(adapter, out.temp(), meta);
  out.commit();
}

LoraConfig read_peft_config(const std::string& dir) {
  const std::string path = dir + "/" + kPeftConfigFile;
  json::Value v = json::parse(read_text_file(path), path);
  if (!v.is_object()) QT_FAIL(ErrorCode::BadFile, path + ": not a JSON object");
  auto field = [&](const char* k) {
    const json::Value* f = v.find(k);
    return (f && !f->is_null()) ? f : nullptr;
  };
  auto unsupported = [&](const std::string& what) {
    QT_FAIL(ErrorCode::Unsupported, path + ": " + what + " is not supported by this engine");
  };
  const json::Value* type = field("peft_type");
  if (!type || !type->is_string() || type->string != "LORA") unsupported("an adapter that is not peft_type LORA");
  LoraConfig c;
  c.targets.clear();
  const json::Value* r = field("r");
  if (!r || !r->is_int || r->integer <= 0) QT_FAIL(ErrorCode::BadFile, path + ": field 'r' must be a positive integer");
  c.r = static_cast<int>(r->integer);
  const json::Value* alpha = field("lora_alpha");
  c.alpha = alpha && alpha->is_number() ? static_cast<float>(alpha->number) : 8.0f;
  const json::Value* drop = field("lora_dropout");
  c.dropout = drop && drop->is_number() ? static_cast<float>(drop->number) : 0.0f;
  const json::Value* tm = field("target_modules");
  if (!tm) QT_FAIL(ErrorCode::BadFile, path + ": field 'target_modules' is missing");
  std::vector<std::string> names;
  if (tm->is_string()) names.push_back(tm->string);
  else if (tm->is_array())
    for (const auto& e : tm->array) {
      if (!e.is_string()) QT_FAIL(ErrorCode::BadFile, path + ": target_modules must be names");
      names.push_back(e.string);
    }
  else QT_FAIL(ErrorCode::BadFile, path + ": target_modules must be a list of names");
  for (const auto& n : names) {
    std::string last = n.substr(n.rfind('.') == std::string::npos ? 0 : n.rfind('.') + 1);
    const int t = target_from_name(last);
    if (t < 0 || last != target_name(t)) unsupported("target module '" + n + "'");
    c.targets.push_back(last);
  }
  const json::Value* bias = field("bias");
  if (bias && (!bias->is_string() || bias->string != "none")) unsupported("bias other than \"none\"");
  for (const char* flag : {"use_dora", "use_rslora", "fan_in_fan_out"}) {
    const json::Value* f = field(flag);
    if (f && f->is_bool() && f->boolean) unsupported(std::string(flag) + " = true");
  }
  for (const char* pat : {"rank_pattern", "alpha_pattern"}) {
    const json::Value* f = field(pat);
    if (f && f->is_object() && !f->object.empty()) unsupported(std::string("a non-empty ") + pat);
  }
  if (field("layers_to_transform")) unsupported("layers_to_transform");
  const json::Value* mts = field("modules_to_save");
  if (mts && mts->is_array() && !mts->array.empty()) unsupported("modules_to_save");
  try {
    return normalize_lora_config(c);
  } catch (const Error& e) {
    QT_FAIL(ErrorCode::BadFile, path + ": " + e.what());
  }
}

void read_peft_weights(Adapter& ad, const std::string& dir) {
  const std::string path = dir + "/" + kPeftWeightsFile;
  SafetensorsFile f(path);
  const ModelConfig& mc = ad.model->config;
  std::vector<float> host(ad.layout.num_params, 0.0f);
  std::vector<char> filled(ad.layout.num_params, 0);
  const int64_t R = ad.config.r;
  size_t matched = 0;
  for (int l = 0; l < mc.num_layers; l++)
    for (int t = 0; t < NUM_TARGETS; t++) {
      const LoraSlot& s = ad.layout.slots[static_cast<size_t>(l)][static_cast<size_t>(t)];
      if (!s.on) continue;
      for (bool is_b : {false, true}) {
        const std::string key = peft_key(l, t, is_b);
        const StTensor* st = f.find(key);
        if (!st) QT_FAIL(ErrorCode::NotFound, path + ": tensor '" + key + "' is missing");
        const std::vector<int64_t> want = is_b ? std::vector<int64_t>{s.out, R} : std::vector<int64_t>{R, s.in};
        if (st->shape != want)
          QT_FAIL(ErrorCode::ShapeMismatch, path + ": tensor '" + key + "' has shape [" +
                                                (st->shape.size() == 2 ? std::to_string(st->shape[0]) + ", " + std::to_string(st->shape[1]) : std::string("?")) +
                                                "] but the model needs [" + std::to_string(want[0]) + ", " + std::to_string(want[1]) + "]");
        std::vector<float> v = st_read_f32(f, *st);
        std::copy(v.begin(), v.end(), host.begin() + static_cast<long>(is_b ? s.b : s.a));
        matched++;
      }
    }
  // Anything else in the file would be silently ignored by us but applied by PEFT: refuse instead.
  if (f.tensors().size() != matched) {
    for (const auto& t : f.tensors()) {
      bool known = false;
      for (int l = 0; l < mc.num_layers && !known; l++)
        for (int k = 0; k < NUM_TARGETS && !known; k++)
          known = ad.layout.slots[static_cast<size_t>(l)][static_cast<size_t>(k)].on && (t.name == peft_key(l, k, false) || t.name == peft_key(l, k, true));
      if (!known)
        QT_FAIL(ErrorCode::Unsupported, path + ": tensor '" + t.name + "' is not a LoRA matrix of this model's target modules");
    }
  }
  ad.model->be->upload(ad.params.get(), host.data(), host.size() * sizeof(float));
}

std::shared_ptr<Adapter> load_peft_adapter(const std::shared_ptr<Model>& model, const std::string& folder) {
  QT_CHECK(model != nullptr, ErrorCode::InvalidArgument, "load_peft_adapter: no model");
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::u8path(folder), ec))
    QT_FAIL(ErrorCode::NotFound, folder + ": adapter folder not found");
  LoraConfig c = read_peft_config(folder);
  auto ad = make_empty_adapter(model, c);
  read_peft_weights(*ad, folder);
  return ad;
}

}  // namespace qt
