// gpu_hf DIR: our side of the transformers + peft comparison (hf_compare.py prepare/compare around it).
// For each mode (bf16: NF4 off, bf16 compute; fp32: NF4 off, fp32 compute; nf4: NF4 + double quant, bf16
// compute) on cuda:0: loads DIR/model and the PEFT adapter DIR/adapter, writes the logits of every batch row
// alone (forward_logits) as ours_<mode>_logits_row<b>.f32, and the padded batch's loss and LoRA gradients (the
// trainer's own forward/backward, no dropout, no NEFTune) as ours_<mode>.json + ours_<mode>_grads.safetensors
// (PEFT key names). For nf4 it also writes DIR/model_nf4deq: the same checkpoint with every decoder linear
// replaced by our dequantized NF4 values (fp32), so transformers can run the exact base our engine uses.
// Mode bf16ref repeats bf16 on run 1's paths (QT_CUDA_ATTN=simt, QT_CKPT_BF16=0) for comparison.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "files.h"
#include "gpu_common.h"
#include "model.h"
#include "peft.h"
#include "safetensors.h"
#include "tools.h"

using namespace qg;
namespace fs = std::filesystem;

namespace {

struct Batch {
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<int>> masks;
};

Batch read_batch(const std::string& path) {
  auto v = qt::json::parse(qt::read_text_file(path), path);
  Batch b;
  for (const auto& r : v.find("rows")->array) {
    b.rows.emplace_back();
    for (const auto& x : r.array) b.rows.back().push_back(static_cast<int32_t>(x.integer));
  }
  for (const auto& r : v.find("masks")->array) {
    b.masks.emplace_back();
    for (const auto& x : r.array) b.masks.back().push_back(static_cast<int>(x.integer));
  }
  return b;
}

void write_f32(const std::string& path, const std::vector<float>& v) { qt::write_file(path, v.data(), v.size() * sizeof(float)); }

// loss and LoRA gradients of the padded batch, as trainer_step computes them (dloss = 1 / counted tokens)
double loss_and_grads(const std::shared_ptr<qt::Model>& m, const qt::Adapter& ad, const Batch& bt, std::vector<float>& grads) {
  const int B = static_cast<int>(bt.rows.size());
  int T = 0;
  for (const auto& r : bt.rows) T = std::max(T, static_cast<int>(r.size()));
  std::vector<int32_t> ids(static_cast<size_t>(B) * T, 0), targets(ids.size(), -1), lengths;
  int64_t count = 0;
  for (int b = 0; b < B; b++) {
    const auto& r = bt.rows[static_cast<size_t>(b)];
    const int len = static_cast<int>(r.size());
    lengths.push_back(len);
    for (int t = 0; t < len; t++) {
      ids[static_cast<size_t>(b) * T + t] = r[static_cast<size_t>(t)];
      if (t + 1 < len && bt.masks[static_cast<size_t>(b)][static_cast<size_t>(t + 1)]) {
        targets[static_cast<size_t>(b) * T + t] = r[static_cast<size_t>(t + 1)];
        count++;
      }
    }
  }
  qt::Activations a;
  qt::alloc_activations(a, *m, qt::ActMode::TrainCheckpointed, B * T, ad.config.r);
  m->be->upload(a.ids, ids.data(), ids.size() * 4);
  m->be->upload(a.targets, targets.data(), targets.size() * 4);
  m->be->upload(a.lengths, lengths.data(), lengths.size() * 4);
  qt::DeviceBuffer g(m->be, &m->ledger, qt::MemCategory::Lora, ad.layout.num_params * 4);
  m->be->zero(g.get(), g.size());
  qt::Pass p;
  p.B = B;
  p.T = T;
  p.use_lengths = true;
  p.training = true;  // the adapter's dropout is 0 and NEFTune is off: the same function as eval, with gradients
  p.seed = 1;
  qt::model_forward(*m, &ad, a, p, nullptr);
  const double sum = qt::model_loss(*m, &ad, a, p, g.as<float>(), 1.0f / static_cast<float>(count), nullptr);
  grads.resize(ad.layout.num_params);
  m->be->download(grads.data(), g.get(), grads.size() * 4);
  return sum / static_cast<double>(count);
}

void write_grads(const std::string& path, const qt::Adapter& ad, const std::vector<float>& g) {
  std::vector<qt::StWriteTensor> ts;
  const int64_t R = ad.config.r;
  for (size_t l = 0; l < ad.layout.slots.size(); l++)
    for (int t = 0; t < qt::NUM_TARGETS; t++) {
      const auto& s = ad.layout.slots[l][static_cast<size_t>(t)];
      if (!s.on) continue;
      ts.push_back({qt::peft_key(static_cast<int>(l), t, false), "F32", {R, s.in}, g.data() + s.a});
      ts.push_back({qt::peft_key(static_cast<int>(l), t, true), "F32", {s.out, R}, g.data() + s.b});
    }
  qt::write_safetensors(path, ts, {{"format", "pt"}});
}

// DIR/model_nf4deq: config.json, shard 1 = the original embeddings, norms and lm_head (bytes as stored), shard 2 =
// the dequantized decoder linears (F32, transformers rounds them to bf16 on load as bitsandbytes does), and an
// index mapping every tensor to its shard. Each tensor is stored once, so no loader can pick the wrong copy.
void write_dequantized(const std::string& dir, const std::shared_ptr<qt::Model>& m) {
  const std::string out = dir + "/model_nf4deq";
  fs::remove_all(out);
  fs::create_directories(out);
  fs::copy_file(dir + "/model/config.json", out + "/config.json");
  std::vector<std::vector<float>> keep;
  std::vector<qt::StWriteTensor> lin, rest;
  qt::json::Value map = qt::json::Value::new_object();
  for (int l = 0; l < m->config.num_layers; l++)
    for (int t = 0; t < qt::NUM_TARGETS; t++) {
      const std::string name = qt::layer_weight_name(l, t);
      keep.push_back(qt::model_weight_fp32(*m, name));
      const auto& w = m->layers[static_cast<size_t>(l)].lin[t];
      lin.push_back({name, "F32", {w.rows, w.cols}, keep.back().data()});
      map.set(name, qt::json::Value::from_string("model-00002-of-00002.safetensors"));
    }
  qt::SafetensorsFile orig(dir + "/model/model.safetensors");
  for (const auto& t : orig.tensors())
    if (!map.find(t.name)) {
      rest.push_back({t.name, t.dtype, t.shape, orig.data(t)});
      map.set(t.name, qt::json::Value::from_string("model-00001-of-00002.safetensors"));
    }
  qt::write_safetensors(out + "/model-00001-of-00002.safetensors", rest, {{"format", "pt"}});
  qt::write_safetensors(out + "/model-00002-of-00002.safetensors", lin, {{"format", "pt"}});
  int64_t total = 0;
  for (const auto& t : orig.tensors())
    if (map.find(t.name) && map.find(t.name)->string == "model-00001-of-00002.safetensors") total += static_cast<int64_t>(t.nbytes);
  for (const auto& t : lin) total += t.shape[0] * t.shape[1] * 4;
  qt::json::Value idx = qt::json::Value::new_object();
  idx.set("metadata", qt::json::Value::new_object().set("total_size", qt::json::Value::from_int(total)));
  idx.set("weight_map", std::move(map));
  qt::write_file(out + "/model.safetensors.index.json", qt::json::dump(idx));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::printf("usage: gpu_hf DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  int failures = 0;
  const Batch bt = read_batch(dir + "/batch.json");
  struct Mode {
    const char* name;
    qt::Quant quant;
    const char* compute;
  };
  // bf16ref: the bf16 mode on run 1's paths (fp32 SIMT attention, fp32 activation checkpoints), so a difference the
  // fast paths make against transformers shows up beside it.
  for (Mode md : {Mode{"bf16", qt::Quant::None, "bf16"}, Mode{"fp32", qt::Quant::None, "fp32"}, Mode{"nf4", qt::Quant::NF4, "bf16"},
                  Mode{"bf16ref", qt::Quant::None, "bf16"}}) {
    const auto t0 = Clock::now();
    const bool ref_paths = std::string(md.name) == "bf16ref";
    const char* attn_env = std::getenv("QT_CUDA_ATTN");
    const char* ckpt_env = std::getenv("QT_CKPT_BF16");
    const std::string saved_ckpt = ckpt_env ? ckpt_env : "";
    if (ref_paths) {
      qt::cuda::set_path("attn", "simt");
      setenv("QT_CKPT_BF16", "0", 1);
    }
    try {
      qt::LoadOptions o;
      o.folder = dir + "/model";
      o.device = "cuda:0";
      o.quant = md.quant;
      o.double_quant = true;
      o.compute_dtype = md.compute;
      auto m = qt::load_model(o);
      const double load_s = seconds_since(t0);
      auto ad = qt::load_peft_adapter(m, dir + "/adapter");
      for (size_t b = 0; b < bt.rows.size(); b++)
        write_f32(dir + "/ours_" + md.name + "_logits_row" + std::to_string(b) + ".f32", qt::forward_logits(m, ad.get(), bt.rows[b]));
      std::vector<float> g;
      const double loss = loss_and_grads(m, *ad, bt, g);
      write_grads(dir + "/ours_" + std::string(md.name) + "_grads.safetensors", *ad, g);
      qt::json::Value j = qt::json::Value::new_object();
      j.set("loss", qt::json::Value::from_double(loss)).set("load_seconds", qt::json::Value::from_double(load_s));
      qt::write_file(dir + "/ours_" + std::string(md.name) + ".json", qt::json::dump(j));
      if (md.quant == qt::Quant::NF4) write_dequantized(dir, m);
      std::printf("gpu_hf %-5s loss %.6f (load %.1f s, total %.1f s)\n", md.name, loss, load_s, seconds_since(t0));
    } catch (const qt::Error& e) {
      std::printf("gpu_hf %-5s FAILED: %s: %s\n", md.name, qt::error_code_name(e.code()), e.what());
      failures++;
    }
    if (ref_paths) {
      if (!attn_env || !qt::cuda::set_path("attn", attn_env)) qt::cuda::set_path("attn", "tc16");  // back to the default
      if (ckpt_env) setenv("QT_CKPT_BF16", saved_ckpt.c_str(), 1);
      else unsetenv("QT_CKPT_BF16");
    }
    std::fflush(stdout);
  }
  return failures;
}
