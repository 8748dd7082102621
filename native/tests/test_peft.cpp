// PEFT adapter folders: export -> import round trip, the exact files, keys, shapes and config fields peft
// expects, adapters written by others (BF16), and clear errors for what we cannot apply.
#include <filesystem>

#include "files.h"
#include "fixtures.h"
#include "harness.h"
#include "json.h"
#include "model.h"
#include "rng.h"
#include "peft.h"
#include "safetensors.h"

using namespace qtest;
namespace fs = std::filesystem;

namespace {
struct PeftSetup {
  TempDir dir;
  std::shared_ptr<qt::Model> model;
  std::shared_ptr<qt::Adapter> adapter;
  PeftSetup() {
    TinySpec s;
    s.arch = "Qwen2ForCausalLM";
    write_tiny_model(dir / "m", s);
    qt::LoadOptions o;
    o.folder = dir / "m";
    model = qt::load_model(o);
    qt::LoraConfig lc;
    lc.r = 8;
    lc.alpha = 16;
    lc.dropout = 0.05f;
    lc.targets = {"v", "q", "down_proj", "gate"};  // short names accepted, normalised to PEFT's
    adapter = qt::create_adapter(model, lc);
    float* p = adapter->params.as<float>();
    for (size_t i = 0; i < adapter->layout.num_params; i++) p[i] = 2 * qt::rng_uniform(8, i) - 1;
  }
};
}  // namespace

TEST(peft_export_import_round_trip) {
  PeftSetup s;
  qt::save_peft_adapter(*s.adapter, s.dir / "out", qt::PeftMeta{"meta-llama/Meta-Llama-3-8B-Instruct"});
  auto back = qt::load_peft_adapter(s.model, s.dir / "out");
  CHECK(back->config.targets == s.adapter->config.targets);
  CHECK_EQ(back->config.r, 8);
  CHECK_EQ(back->config.alpha, 16.0f);
  CHECK_EQ(back->config.dropout, 0.05f);
  CHECK_EQ(back->layout.num_params, s.adapter->layout.num_params);
  const float* a = s.adapter->params.as<float>();
  const float* b = back->params.as<float>();
  CHECK(std::equal(a, a + s.adapter->layout.num_params, b));
  std::vector<int32_t> ids = {5, 6, 7, 8};
  CHECK(qt::forward_logits(s.model, s.adapter.get(), ids) == qt::forward_logits(s.model, back.get(), ids));
  // saving again over an adapter folder replaces it atomically
  qt::save_peft_adapter(*back, s.dir / "out", qt::PeftMeta{});
  for (const auto& e : fs::directory_iterator(s.dir.path)) CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
}

TEST(peft_files_keys_and_shapes) {
  PeftSetup s;
  qt::save_peft_adapter(*s.adapter, s.dir / "out", qt::PeftMeta{"base/model"});
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(s.dir / "out")) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>({"adapter_config.json", "adapter_model.safetensors"}));
  auto cfg = qt::json::parse(qt::read_text_file(s.dir / "out/adapter_config.json"), "cfg");
  CHECK_EQ(cfg.find("peft_type")->string, std::string("LORA"));
  CHECK_EQ(cfg.find("task_type")->string, std::string("CAUSAL_LM"));
  CHECK_EQ(cfg.find("base_model_name_or_path")->string, std::string("base/model"));
  CHECK(cfg.find("r")->is_int && cfg.find("r")->integer == 8);
  CHECK_EQ(cfg.find("lora_alpha")->number, 16.0);
  CHECK_NEAR(cfg.find("lora_dropout")->number, 0.05, 1e-12);
  CHECK_EQ(cfg.find("bias")->string, std::string("none"));
  std::vector<std::string> targets;
  for (const auto& t : cfg.find("target_modules")->array) targets.push_back(t.string);
  CHECK(targets == std::vector<std::string>({"q_proj", "v_proj", "gate_proj", "down_proj"}));
  qt::SafetensorsFile f(s.dir / "out/adapter_model.safetensors");
  CHECK_EQ(f.tensors().size(), 2u * 4 * 2);  // 2 layers x 4 targets x (A, B)
  struct K {
    const char* key;
    std::vector<int64_t> shape;
  } expect[] = {
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", {8, 32}},
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", {32, 8}},
      {"base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", {8, 32}},
      {"base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", {16, 8}},  // GQA: 2 kv heads x 8
      {"base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight", {64, 8}},
      {"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight", {8, 64}},
      {"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", {32, 8}},
  };
  for (const auto& k : expect) {
    const qt::StTensor* t = f.find(k.key);
    CHECK_MSG(t != nullptr, k.key);
    CHECK_MSG(t->shape == k.shape && t->dtype == "F32", k.key);
  }
}

TEST(peft_import_accepts_bf16_and_rejects_what_it_cannot_apply) {
  PeftSetup s;
  qt::save_peft_adapter(*s.adapter, s.dir / "good", qt::PeftMeta{});
  const std::string cfg = qt::read_text_file(s.dir / "good/adapter_config.json");
  qt::SafetensorsFile f(s.dir / "good/adapter_model.safetensors");
  // rewrite as BF16 (as peft saves a bf16-trained adapter)
  std::vector<std::vector<uint16_t>> store;
  std::vector<qt::StWriteTensor> bf;
  for (const auto& t : f.tensors()) {
    auto v = qt::st_read_f32(f, t);
    store.emplace_back(v.size());
    for (size_t i = 0; i < v.size(); i++) store.back()[i] = qt::f32_to_bf16(v[i]);
  }
  for (size_t i = 0; i < f.tensors().size(); i++) bf.push_back({f.tensors()[i].name, "BF16", f.tensors()[i].shape, store[i].data()});
  auto make = [&](const std::string& name, const std::string& config, std::vector<qt::StWriteTensor> tensors) {
    fs::create_directories(s.dir / name);
    qt::write_file(s.dir / name + "/adapter_config.json", config);
    qt::write_safetensors(s.dir / name + "/adapter_model.safetensors", tensors);
    return s.dir / name;
  };
  auto ad = qt::load_peft_adapter(s.model, make("bf16", cfg, bf));
  const float* a = s.adapter->params.as<float>();
  const float* b = ad->params.as<float>();
  for (size_t i = 0; i < ad->layout.num_params; i++) CHECK_NEAR(b[i], a[i], std::fabs(a[i]) * 0.008);
  // a wrong shape, a missing tensor, an extra tensor
  auto wrong = bf;
  wrong[0].shape = {wrong[0].shape[1], wrong[0].shape[0]};
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("shape", cfg, wrong)), qt::ErrorCode::ShapeMismatch);
  auto missing = bf;
  missing.pop_back();
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("missing", cfg, missing)), qt::ErrorCode::NotFound);
  auto extra = bf;
  extra.push_back({"base_model.model.lm_head.weight", "BF16", {2}, store[0].data()});
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("extra", cfg, extra)), qt::ErrorCode::Unsupported);
  // PEFT features we do not apply
  auto with = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    c.replace(c.find(from), from.size(), to);
    return c;
  };
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("dora", with("\"use_dora\": false", "\"use_dora\": true"), bf)), qt::ErrorCode::Unsupported);
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("ia3", with("\"LORA\"", "\"IA3\""), bf)), qt::ErrorCode::Unsupported);
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("bias", with("\"bias\": \"none\"", "\"bias\": \"all\""), bf)), qt::ErrorCode::Unsupported);
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, make("json", "{\"peft_type\": \"LORA\",", bf)), qt::ErrorCode::BadFile);
  CHECK_THROWS_CODE(qt::load_peft_adapter(s.model, s.dir / "nowhere"), qt::ErrorCode::NotFound);
  // another model's adapter (different hidden size) does not fit
  TinySpec big;
  big.hidden = 64;
  big.ffn = 128;
  write_tiny_model(s.dir / "big", big);
  qt::LoadOptions o;
  o.folder = s.dir / "big";
  auto bigm = qt::load_model(o);
  CHECK_THROWS_CODE(qt::load_peft_adapter(bigm, s.dir / "good"), qt::ErrorCode::ShapeMismatch);
  // never replaces a folder holding other files
  fs::create_directories(s.dir / "user");
  qt::write_file(s.dir / "user/thesis.docx", "precious");
  CHECK_THROWS_CODE(qt::save_peft_adapter(*s.adapter, s.dir / "user", qt::PeftMeta{}), qt::ErrorCode::InvalidArgument);
  CHECK_EQ(qt::read_text_file(s.dir / "user/thesis.docx"), std::string("precious"));
}
