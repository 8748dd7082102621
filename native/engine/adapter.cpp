// LoRA adapters: validation of LoraConfig, the flat parameter layout, and PEFT's initialisation:
// A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0, so training starts at the base model.
// Parameters are fp32 master weights on the model's device (ENGINE_FACTS §5).
#include <cmath>

#include "model.h"
#include "rng.h"

namespace qt {

LoraConfig normalize_lora_config(const LoraConfig& in) {
  LoraConfig c = in;
  if (c.r <= 0) QT_FAIL(ErrorCode::InvalidArgument, "LoRA r must be > 0 (got " + std::to_string(c.r) + ")");
  if (!(c.alpha > 0) || !std::isfinite(c.alpha)) QT_FAIL(ErrorCode::InvalidArgument, "LoRA alpha must be > 0");
  if (!(c.dropout >= 0.0f && c.dropout < 1.0f)) QT_FAIL(ErrorCode::InvalidArgument, "LoRA dropout must be in [0, 1)");
  if (c.targets.empty()) QT_FAIL(ErrorCode::InvalidArgument, "LoRA needs at least one target module");
  bool seen[NUM_TARGETS] = {};
  for (const auto& s : c.targets) {
    int t = target_from_name(s);
    if (t < 0)
      QT_FAIL(ErrorCode::InvalidArgument, "unknown LoRA target '" + s +
                                              "' (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
    seen[t] = true;
  }
  c.targets.clear();
  for (int t = 0; t < NUM_TARGETS; t++)
    if (seen[t]) c.targets.push_back(target_name(t));
  return c;
}

LoraLayout lora_layout(const ModelConfig& mc, const LoraConfig& lc) {
  LoraLayout lay;
  lay.slots.resize(static_cast<size_t>(mc.num_layers));
  bool on[NUM_TARGETS] = {};
  for (const auto& s : lc.targets) on[target_from_name(s)] = true;
  size_t off = 0;
  const size_t R = static_cast<size_t>(lc.r);
  for (int l = 0; l < mc.num_layers; l++)
    for (int t = 0; t < NUM_TARGETS; t++) {
      LoraSlot& s = lay.slots[static_cast<size_t>(l)][static_cast<size_t>(t)];
      if (!on[t]) continue;
      s.on = true;
      s.in = target_in_features(mc, t);
      s.out = target_out_features(mc, t);
      s.a = off;
      off += R * static_cast<size_t>(s.in);
      s.b = off;
      off += static_cast<size_t>(s.out) * R;
    }
  lay.num_params = off;
  return lay;
}

std::shared_ptr<Adapter> make_empty_adapter(const std::shared_ptr<Model>& model, const LoraConfig& config) {
  QT_CHECK(model != nullptr, ErrorCode::InvalidArgument, "no model");
  bind_device(*model);
  auto ad = std::make_shared<Adapter>();
  ad->model = model;
  ad->config = normalize_lora_config(config);
  ad->scaling = ad->config.alpha / static_cast<float>(ad->config.r);
  ad->layout = lora_layout(model->config, ad->config);
  ad->params = DeviceBuffer(model->be, &model->ledger, MemCategory::Lora, ad->layout.num_params * sizeof(float));
  model->be->zero(ad->params.get(), ad->params.size());
  return ad;
}

std::shared_ptr<Adapter> create_adapter(const std::shared_ptr<Model>& model, const LoraConfig& config) {
  auto ad = make_empty_adapter(model, config);
  std::vector<float> host(ad->layout.num_params, 0.0f);  // B stays zero
  const size_t R = static_cast<size_t>(ad->config.r);
  for (size_t l = 0; l < ad->layout.slots.size(); l++)
    for (int t = 0; t < NUM_TARGETS; t++) {
      const LoraSlot& s = ad->layout.slots[l][static_cast<size_t>(t)];
      if (!s.on) continue;
      const float bound = 1.0f / std::sqrt(static_cast<float>(s.in));
      const uint64_t stream = rng_derive(ad->config.seed, 1 + l, static_cast<uint64_t>(t), 0xa);
      for (size_t i = 0; i < R * static_cast<size_t>(s.in); i++)
        host[s.a + i] = (2.0f * rng_uniform(stream, i) - 1.0f) * bound;
    }
  model->be->upload(ad->params.get(), host.data(), host.size() * sizeof(float));
  return ad;
}

const LoraConfig& adapter_config(const Adapter& adapter) { return adapter.config; }

}  // namespace qt
