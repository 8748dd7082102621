// load_model: a Hugging Face folder into a Model on one device. Decoder-layer linears are quantized to NF4
// (Quant::NF4, optional double quantization) or kept in fp32 (Quant::None); embeddings and lm_head stay in
// their stored 16-bit dtype; norms and Qwen2 biases are converted to fp32 (exact for 16-bit sources, and
// only O(L*C) values). Cancel is checked between tensors; progress is reported per tensor.
#include <cmath>

#include "model.h"
#include "nf4.h"
#include "safetensors.h"

namespace qt {

namespace {

struct Loader {
  Model& m;
  const SafetensorsSet& set;
  const std::string& folder;

  SafetensorsSet::Ref ref(const std::string& name) {
    auto r = set.find(name);
    if (!r.tensor) QT_FAIL(ErrorCode::NotFound, folder + ": tensor '" + name + "' is missing from the safetensors files");
    return r;
  }

  void* upload(const void* host, size_t bytes) {
    m.storage.emplace_back(m.be, &m.ledger, MemCategory::Weights, bytes);
    m.be->upload(m.storage.back().get(), host, bytes);
    return m.storage.back().get();
  }

  float* load_f32(const std::string& name) {
    auto r = ref(name);
    std::vector<float> v = st_read_f32(*r.file, *r.tensor);
    for (float x : v)
      if (!std::isfinite(x)) QT_FAIL(ErrorCode::BadFile, r.file->path() + ": tensor '" + name + "' holds NaN or infinite values");
    return static_cast<float*>(upload(v.data(), v.size() * sizeof(float)));
  }

  // Embedding / lm_head: kept as stored (BF16, F16 or F32).
  Weight load_dense(const std::string& name) {
    auto r = ref(name);
    DType dt;
    if (!st_compute_dtype(r.tensor->dtype, &dt))
      QT_FAIL(ErrorCode::Unsupported, r.file->path() + ": tensor '" + name + "' has dtype " + r.tensor->dtype +
                                          "; only BF16, F16 and F32 weights are supported");
    Weight w;
    w.dtype = dt;
    w.rows = r.tensor->shape[0];
    w.cols = r.tensor->shape[1];
    w.data = upload(r.file->data(*r.tensor), r.tensor->nbytes);
    return w;
  }

  // Decoder-layer linear: NF4 (+ double quant) or fp32.
  Weight load_linear(const std::string& name) {
    auto r = ref(name);
    std::vector<float> v = st_read_f32(*r.file, *r.tensor);
    Weight w;
    w.rows = r.tensor->shape[0];
    w.cols = r.tensor->shape[1];
    if (m.quant == Quant::None) {
      w.dtype = DType::F32;
      w.data = upload(v.data(), v.size() * sizeof(float));
      return w;
    }
    Nf4Host q = nf4_quantize(v.data(), w.rows, w.cols, m.double_quant);
    w.dtype = DType::NF4;
    w.double_quant = q.double_quant;
    w.data = upload(q.codes.data(), q.codes.size());
    if (q.double_quant) {
      w.absmax_q = static_cast<const uint8_t*>(upload(q.absmax_q.data(), q.absmax_q.size()));
      w.absmax_scale = static_cast<const float*>(upload(q.absmax_scale.data(), q.absmax_scale.size() * sizeof(float)));
      w.absmax_offset = q.absmax_offset;
    } else {
      w.absmax = static_cast<const float*>(upload(q.absmax.data(), q.absmax.size() * sizeof(float)));
    }
    return w;
  }
};

}  // namespace

std::shared_ptr<Model> load_model(const LoadOptions& options) {
  const std::string& cd = options.compute_dtype;
  if (cd != "auto" && cd != "bf16" && cd != "fp16" && cd != "fp32")
    QT_FAIL(ErrorCode::InvalidArgument, "compute_dtype '" + cd + "': use auto, bf16, fp16 or fp32");
  auto m = std::make_shared<Model>();
  m->be = &backend_for_device(options.device, &m->device_index);
  m->device = options.device == "cuda" ? "cuda:0" : options.device;
  bind_device(*m);
  m->quant = options.quant;
  m->double_quant = options.double_quant;
  auto progress = [&](double f, const char* stage) {
    if (options.on_progress) options.on_progress(f, stage);
  };
  progress(0.0, "reading");

  ModelInspection info = inspect_model(options.folder);  // config + headers + names/shapes checked
  m->config = info.config;
  const ModelConfig& c = m->config;
  SafetensorsSet set(options.folder);
  Loader ld{*m, set, options.folder};
  const double total = 3.0 + c.num_layers;

  m->wte = ld.load_dense("model.embed_tokens.weight");
  m->lm_head = c.tie_embeddings ? m->wte : ld.load_dense("lm_head.weight");
  m->final_norm = ld.load_f32("model.norm.weight");
  std::vector<float> inv = rope_inv_freq(c);
  m->inv_freq = static_cast<float*>(ld.upload(inv.data(), inv.size() * sizeof(float)));
  progress(2.0 / total, "loading");

  m->layers.resize(static_cast<size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; l++) {
    check_cancel(options.cancel);
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& lw = m->layers[static_cast<size_t>(l)];
    lw.attn_norm = ld.load_f32(p + "input_layernorm.weight");
    lw.mlp_norm = ld.load_f32(p + "post_attention_layernorm.weight");
    for (int t = 0; t < NUM_TARGETS; t++) {
      lw.lin[t] = ld.load_linear(layer_weight_name(l, t));
      if (c.attention_bias && t <= TV) lw.bias[t] = ld.load_f32(p + "self_attn." + target_name(t) + ".bias");
    }
    progress((3.0 + l) / total, options.quant == Quant::NF4 ? "quantizing" : "loading");
  }
  check_cancel(options.cancel);
  progress(1.0, "done");
  return m;
}

const ModelConfig& model_config(const Model& model) { return model.config; }
std::string model_device(const Model& model) { return model.device; }

std::vector<float> model_weight_fp32(const Model& model, const std::string& name) {
  bind_device(model);
  const Weight* w = nullptr;
  if (name == "model.embed_tokens.weight") w = &model.wte;
  if (name == "lm_head.weight") w = &model.lm_head;
  for (int l = 0; l < model.config.num_layers && !w; l++)
    for (int t = 0; t < NUM_TARGETS; t++)
      if (name == layer_weight_name(l, t)) w = &model.layers[static_cast<size_t>(l)].lin[t];
  if (!w) QT_FAIL(ErrorCode::NotFound, "model_weight_fp32: no weight named '" + name + "'");
  const size_t n = static_cast<size_t>(w->rows * w->cols);
  DeviceBuffer tmp(model.be, &model.ledger, MemCategory::Activations, n * sizeof(float));
  model.be->dequantize(tmp.as<float>(), *w);
  std::vector<float> out(n);
  model.be->download(out.data(), tmp.get(), n * sizeof(float));
  return out;
}

}  // namespace qt
