// load_model: a Hugging Face folder into a Model on one device. Decoder-layer linears are quantized to NF4
// (Quant::NF4, optional double quantization) or kept unquantized (Quant::None: fp32 on the CPU, the stored
// dtype on a GPU); embeddings and lm_head stay in their stored 16-bit dtype; norms and Qwen2 biases are
// converted to fp32 (exact for 16-bit sources, and only O(L*C) values). Quantization is a backend op: the
// stored bytes go to the device as they are and are quantized there, so loading a big model on a GPU is
// bound by reading the files. Cancel is checked between tensors; progress is reported per tensor.
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
    w.compute = m.compute;
    w.data = upload(r.file->data(*r.tensor), r.tensor->nbytes);
    return w;
  }

  // Decoder-layer linear: NF4 (+ double quant), or unquantized.
  Weight load_linear(const std::string& name) {
    auto r = ref(name);
    DType dt;
    if (!st_compute_dtype(r.tensor->dtype, &dt))
      QT_FAIL(ErrorCode::Unsupported, r.file->path() + ": tensor '" + name + "' has dtype " + r.tensor->dtype +
                                          "; only BF16, F16 and F32 weights are supported");
    const Backend& be = *m.be;
    Weight w;
    w.rows = r.tensor->shape[0];
    w.cols = r.tensor->shape[1];
    w.compute = m.compute;
    if (m.quant == Quant::None) {
      if (&be == &cpu_backend()) {  // the CPU multiplies fp32 weights directly
        std::vector<float> v = st_read_f32(*r.file, *r.tensor);
        w.dtype = DType::F32;
        w.data = upload(v.data(), v.size() * sizeof(float));
      } else {  // a GPU keeps the stored dtype (half the memory of fp32) and converts per GEMM
        w.dtype = dt;
        w.data = upload(r.file->data(*r.tensor), r.tensor->nbytes);
      }
      return w;
    }
    // NF4: the stored values go to the device as they are (a temporary buffer), and are quantized there.
    const int64_t n = w.rows * w.cols, nb = (n + kNf4BlockSize - 1) / kNf4BlockSize;
    w.dtype = DType::NF4;
    w.double_quant = m.double_quant;
    DeviceBuffer src(&be, &m.ledger, MemCategory::Activations, r.tensor->nbytes);
    be.upload(src.get(), r.file->data(*r.tensor), r.tensor->nbytes);
    m.storage.emplace_back(&be, &m.ledger, MemCategory::Weights, static_cast<size_t>((n + 1) / 2));
    uint8_t* codes = m.storage.back().as<uint8_t>();
    w.data = codes;
    if (!m.double_quant) {
      m.storage.emplace_back(&be, &m.ledger, MemCategory::Weights, static_cast<size_t>(nb) * sizeof(float));
      w.absmax = m.storage.back().as<float>();
      be.nf4_quantize(codes, m.storage.back().as<float>(), src.get(), dt, n);
      return w;
    }
    DeviceBuffer absmax(&be, &m.ledger, MemCategory::Activations, static_cast<size_t>(nb) * sizeof(float));
    be.nf4_quantize(codes, absmax.as<float>(), src.get(), dt, n);
    std::vector<float> host(static_cast<size_t>(nb));  // the mean is summed on the host, in index order
    be.download(host.data(), absmax.get(), host.size() * sizeof(float));
    w.absmax_offset = nf4_absmax_mean(host.data(), nb);
    m.storage.emplace_back(&be, &m.ledger, MemCategory::Weights, static_cast<size_t>(nb));
    uint8_t* absmax_q = m.storage.back().as<uint8_t>();
    const int64_t ns = (nb + kDqBlockSize - 1) / kDqBlockSize;
    m.storage.emplace_back(&be, &m.ledger, MemCategory::Weights, static_cast<size_t>(ns) * sizeof(float));
    float* scale = m.storage.back().as<float>();
    be.nf4_double_quant(absmax_q, scale, absmax.as<float>(), w.absmax_offset, nb);
    w.absmax_q = absmax_q;
    w.absmax_scale = scale;
    return w;
  }
};

// The GEMM operand type: the CPU always computes in fp32; a GPU in bf16 where it has bf16 math (sm_80+),
// otherwise fp16 ("auto"), or as asked.
DType resolve_compute(const Backend& be, const std::string& cd) {
  if (&be == &cpu_backend()) return DType::F32;
  if (cd == "fp32") return DType::F32;
  if (cd == "fp16") return DType::F16;
  if (cd == "bf16" && !be.native_bf16())
    QT_FAIL(ErrorCode::Unsupported, "this GPU has no bf16 math (compute capability below 8.0); use compute dtype fp16 or auto");
  if (cd == "bf16") return DType::BF16;
  return be.native_bf16() ? DType::BF16 : DType::F16;
}

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
  m->compute = resolve_compute(*m->be, cd);
  auto progress = [&](double f, const char* stage) {
    if (options.on_progress) options.on_progress(f, stage);
  };
  progress(0.0, "reading");

  ModelInspection info = inspect_model(options.folder);  // config + headers + names/shapes checked
  m->config = info.config;
  const ModelConfig& c = m->config;
  try {
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
  } catch (const Error& e) {
    if (e.code() != ErrorCode::OutOfMemory) throw;
    m->storage.clear();  // give the partial model back before measuring what is free
    uint64_t free_b = 0, total_b = 0;
    m->be->memory_info(&free_b, &total_b);
    const char* where = m->be == &cpu_backend() ? "out of host memory" : "GPU out of memory";
    QT_FAIL(ErrorCode::OutOfMemory, std::string(where) + " loading the model (" + std::to_string(info.weight_bytes >> 20) +
                                        " MiB on disk; " + std::to_string(free_b >> 20) + " of " + std::to_string(total_b >> 20) +
                                        " MiB free); close other programs using the device or choose a smaller model (" + e.what() + ")");
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
