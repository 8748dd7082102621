// Fixture writers (see fixtures.h). Weights: linears ~ U(-a, a) with std weight_scale/sqrt(in), embeddings
// std 1, norms 1 + U(-0.1, 0.1), biases U(-0.1, 0.1): small logits, well-conditioned gradients.
#include "fixtures.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "dtype.h"
#include "engine.h"
#include "json.h"
#include "rng.h"
#include "safetensors.h"

namespace fs = std::filesystem;

namespace qtest {

namespace {

struct HostTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

std::vector<uint8_t> encode(const std::vector<float>& v, const std::string& dtype) {
  std::vector<uint8_t> out;
  if (dtype == "F32") {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
  } else {
    out.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); i++) {
      uint16_t h = dtype == "BF16" ? qt::f32_to_bf16(v[i]) : qt::f32_to_f16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

}  // namespace

void write_tiny_model(const std::string& dir, const TinySpec& s) {
  fs::create_directories(dir);
  const bool qwen = s.arch == "Qwen2ForCausalLM";
  const int hd = s.head_dim ? s.head_dim : s.hidden / s.heads;
  uint64_t stream = 0;
  auto uniform = [&](std::vector<int64_t> shape, float std_) {
    HostTensor t;
    t.shape = shape;
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    t.values.resize(n);
    const uint64_t seed = qt::rng_derive(s.seed, ++stream);
    const float a = std_ * std::sqrt(3.0f);
    for (size_t i = 0; i < n; i++) t.values[i] = (2.0f * qt::rng_uniform(seed, i) - 1.0f) * a;
    return t;
  };
  std::vector<HostTensor> ts;
  auto add = [&](const std::string& name, HostTensor t) {
    t.name = name;
    ts.push_back(std::move(t));
  };
  auto norm = [&](int C) {
    HostTensor t = uniform({C}, 0.1f / std::sqrt(3.0f));
    for (float& v : t.values) v += 1.0f;
    return t;
  };
  add("model.embed_tokens.weight", uniform({s.vocab, s.hidden}, 1.0f));
  for (int l = 0; l < s.layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", norm(s.hidden));
    add(p + "post_attention_layernorm.weight", norm(s.hidden));
    const int q = s.heads * hd, kv = s.kv_heads * hd;
    auto lin = [&](const std::string& name, int out, int in) {
      add(p + name + ".weight", uniform({out, in}, s.weight_scale / std::sqrt(static_cast<float>(in))));
    };
    lin("self_attn.q_proj", q, s.hidden);
    lin("self_attn.k_proj", kv, s.hidden);
    lin("self_attn.v_proj", kv, s.hidden);
    lin("self_attn.o_proj", s.hidden, q);
    if (qwen) {
      add(p + "self_attn.q_proj.bias", uniform({q}, 0.1f / std::sqrt(3.0f)));
      add(p + "self_attn.k_proj.bias", uniform({kv}, 0.1f / std::sqrt(3.0f)));
      add(p + "self_attn.v_proj.bias", uniform({kv}, 0.1f / std::sqrt(3.0f)));
    }
    lin("mlp.gate_proj", s.ffn, s.hidden);
    lin("mlp.up_proj", s.ffn, s.hidden);
    lin("mlp.down_proj", s.hidden, s.ffn);
  }
  add("model.norm.weight", norm(s.hidden));
  if (!s.tied) add("lm_head.weight", uniform({s.vocab, s.hidden}, 1.0f / std::sqrt(static_cast<float>(s.hidden))));

  // config.json
  using qt::json::Value;
  Value cfg = Value::new_object();
  cfg.set("architectures", Value::new_array().push(Value::from_string(s.arch)));
  cfg.set("model_type", Value::from_string(qwen ? "qwen2" : s.arch == "MistralForCausalLM" ? "mistral" : "llama"));
  cfg.set("vocab_size", Value::from_int(s.vocab));
  cfg.set("hidden_size", Value::from_int(s.hidden));
  cfg.set("intermediate_size", Value::from_int(s.ffn));
  cfg.set("num_hidden_layers", Value::from_int(s.layers));
  cfg.set("num_attention_heads", Value::from_int(s.heads));
  cfg.set("num_key_value_heads", Value::from_int(s.kv_heads));
  if (s.head_dim) cfg.set("head_dim", Value::from_int(s.head_dim));
  cfg.set("max_position_embeddings", Value::from_int(s.max_pos));
  cfg.set("rms_norm_eps", Value::from_double(1e-5));
  cfg.set("rope_theta", Value::from_double(s.rope_theta));
  cfg.set("hidden_act", Value::from_string("silu"));
  cfg.set("tie_word_embeddings", Value::from_bool(s.tied));
  cfg.set("torch_dtype", Value::from_string(s.dtype == "BF16" ? "bfloat16" : s.dtype == "F16" ? "float16" : "float32"));
  cfg.set("bos_token_id", Value::from_int(1));
  cfg.set("eos_token_id", Value::from_int(2));
  if (s.llama3_rope) {
    Value rs = Value::new_object();
    rs.set("rope_type", Value::from_string("llama3"))
        .set("factor", Value::from_double(8.0))
        .set("low_freq_factor", Value::from_double(1.0))
        .set("high_freq_factor", Value::from_double(4.0))
        .set("original_max_position_embeddings", Value::from_int(64));
    cfg.set("rope_scaling", std::move(rs));
  } else {
    cfg.set("rope_scaling", Value::null());
  }
  qt::write_file(dir + "/config.json", qt::json::dump(cfg));

  // safetensors (one file or shards + index)
  std::vector<std::vector<uint8_t>> bytes;
  for (const auto& t : ts) bytes.push_back(encode(t.values, s.dtype));
  const int shards = std::max(1, s.shards);
  Value weight_map = Value::new_object();
  for (int k = 0; k < shards; k++) {
    char name[64];
    if (shards == 1) std::snprintf(name, sizeof name, "model.safetensors");
    else std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, shards);
    std::vector<qt::StWriteTensor> out;
    for (size_t i = 0; i < ts.size(); i++) {
      if (static_cast<int>(i % static_cast<size_t>(shards)) != k) continue;
      out.push_back({ts[i].name, s.dtype, ts[i].shape, bytes[i].data()});
      weight_map.set(ts[i].name, Value::from_string(name));
    }
    qt::write_safetensors(dir + "/" + name, out, {{"format", "pt"}});
  }
  if (shards > 1) {
    Value idx = Value::new_object();
    idx.set("metadata", Value::new_object().set("total_size", Value::from_int(0)));
    idx.set("weight_map", std::move(weight_map));
    qt::write_file(dir + "/model.safetensors.index.json", qt::json::dump(idx));
  }
}

TempDir::TempDir() {
  static uint64_t counter = 0;
  fs::path base = fs::temp_directory_path();
  for (;;) {
    fs::path p = base / ("qt-engine-test-" + std::to_string(qt::mix64(reinterpret_cast<uintptr_t>(this) ^
                                                                       static_cast<uint64_t>(std::time(nullptr)) ^ ++counter) % 1000000000ull));
    std::error_code ec;
    if (fs::create_directory(p, ec)) {
      path = p.string();
      return;
    }
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void write_qtds(const std::string& path, const std::vector<Sample>& samples, uint32_t vocab_size) {
  std::vector<uint8_t> out(64, 0);
  std::memcpy(out.data(), "QTDSET1\0", 8);
  auto put32 = [&](size_t off, uint32_t v) { std::memcpy(&out[off], &v, 4); };
  uint64_t total = 0;
  for (const auto& s : samples) total += s.ids.size();
  put32(8, 1);
  put32(12, static_cast<uint32_t>(samples.size()));
  std::memcpy(&out[16], &total, 8);
  put32(24, vocab_size);
  uint64_t off = 0;
  auto append = [&](const void* p, size_t n) { out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); };
  append(&off, 8);
  for (const auto& s : samples) {
    off += s.ids.size();
    append(&off, 8);
  }
  for (const auto& s : samples) append(s.ids.data(), s.ids.size() * 4);
  for (const auto& s : samples) append(s.mask.data(), s.mask.size());
  write_bytes(path, out);
}

std::vector<Sample> random_samples(int n, int min_len, int max_len, int vocab, uint64_t seed) {
  std::vector<Sample> out;
  uint64_t k = 0;
  for (int i = 0; i < n; i++) {
    Sample s;
    int len = min_len + static_cast<int>(qt::rng_u64(seed, k++) % static_cast<uint64_t>(max_len - min_len + 1));
    for (int t = 0; t < len; t++) {
      s.ids.push_back(static_cast<int32_t>(qt::rng_u64(seed, k++) % static_cast<uint64_t>(vocab)));
      s.mask.push_back(t >= std::max(1, len / 3) ? 1 : 0);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<uint16_t> bf16_of(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); i++) h[i] = qt::f32_to_bf16(v[i]);
  return h;
}

std::vector<float> f32_of(const std::vector<uint16_t>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); i++) v[i] = qt::bf16_to_f32(h[i]);
  return v;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace qtest
