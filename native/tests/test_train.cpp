// Schedules, training-set files, batching, and the trainer: overfitting, gradient accumulation, evaluation,
// bit-identical resume from a checkpoint, cancel, settings and file errors.
#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

#include "batching.h"
#include "dataset.h"
#include "files.h"
#include "rng.h"
#include "fixtures.h"
#include "harness.h"
#include "model.h"
#include "scheduler.h"

using namespace qtest;
namespace fs = std::filesystem;

// ---- schedules ------------------------------------------------------------------------------------------

static double hf_restarts(int64_t step, int64_t warmup, int64_t total, double cycles) {  // ENGINE_FACTS §7
  if (step < warmup) return static_cast<double>(step) / std::max<int64_t>(1, warmup);
  double p = static_cast<double>(step - warmup) / std::max<int64_t>(1, total - warmup);
  if (p >= 1) return 0;
  return std::max(0.0, 0.5 * (1 + std::cos(3.14159265358979323846 * std::fmod(cycles * p, 1.0))));
}

TEST(scheduler_cosine_restarts_tutorial_setting) {
  // tutorial: 200 rows, batch 4 -> 50 steps/epoch; warmup 0.2 epoch = 10 steps; total 10 epochs = 500 steps
  const int64_t spe = 50, warmup = spe / 5, total = 10 * spe;
  const double lr = 5e-5;
  struct P {
    int64_t step;
    double expect;
  } pts[] = {{0, 0.0}, {1, 0.1}, {5, 0.5}, {10, 1.0}, {255, 0.5}, {500, 0.0}, {499, 0.5 * (1 + std::cos(3.14159265358979323846 * 489.0 / 490))}};
  for (auto p : pts) {
    CHECK_NEAR(qt::lr_lambda(qt::Schedule::CosineWithRestarts, p.step, warmup, total, 1.0), p.expect, 1e-12);
    CHECK_NEAR(qt::lr_lambda(qt::Schedule::CosineWithRestarts, p.step, warmup, total, 1.0), hf_restarts(p.step, warmup, total, 1), 1e-15);
  }
  qt::TrainConfig c;
  c.lr = static_cast<float>(lr);
  c.warmup_steps = static_cast<int>(warmup);
  c.total_steps = static_cast<int>(total);
  CHECK_NEAR(qt::schedule_lr(c, 10), lr, 1e-11);  // fp32 lr
  CHECK_NEAR(qt::schedule_lr(c, 255), lr / 2, 1e-11);
}

TEST(scheduler_two_cycles_and_other_schedules) {
  const int64_t warmup = 4, total = 44;  // 40 steps after warmup, 2 cycles of 20
  for (int64_t s = 0; s <= 50; s++)
    CHECK_NEAR(qt::lr_lambda(qt::Schedule::CosineWithRestarts, s, warmup, total, 2.0), hf_restarts(s, warmup, total, 2.0), 1e-15);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::CosineWithRestarts, 24, warmup, total, 2.0), 1.0, 1e-12);   // hard restart
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::CosineWithRestarts, 14, warmup, total, 2.0), 0.5, 1e-12);   // mid first cycle
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::CosineWithRestarts, 23, warmup, total, 2.0), 0.5 * (1 + std::cos(3.14159265358979323846 * 19 / 20)), 1e-12);
  // HF get_cosine_schedule_with_warmup (num_cycles 0.5)
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Cosine, 2, warmup, total, 1.0), 0.5, 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Cosine, 24, warmup, total, 1.0), 0.5, 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Cosine, 14, warmup, total, 1.0), 0.5 * (1 + std::cos(3.14159265358979323846 * 0.25)), 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Cosine, 44, warmup, total, 1.0), 0.0, 1e-12);
  // linear: (total - step) / (total - warmup)
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Linear, 3, warmup, total, 1.0), 0.75, 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Linear, 14, warmup, total, 1.0), 30.0 / 40, 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Linear, 60, warmup, total, 1.0), 0.0, 1e-12);
  // constant with warmup
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Constant, 1, warmup, total, 1.0), 0.25, 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Constant, 30, warmup, total, 1.0), 1.0, 1e-12);
  CHECK_NEAR(qt::lr_lambda(qt::Schedule::Constant, 0, 0, total, 1.0), 1.0, 1e-12);  // no warmup
}

// ---- training-set files ---------------------------------------------------------------------------------

TEST(dataset_reads_and_inspects) {
  TempDir dir;
  auto samples = random_samples(7, 3, 12, 300, 1);
  write_qtds(dir / "a.qtds", samples, 300);
  qt::DatasetInfo info = qt::inspect_dataset(dir / "a.qtds");
  CHECK_EQ(info.num_samples, 7);
  uint64_t tokens = 0, targets = 0;
  int longest = 0;
  for (const auto& s : samples) {
    tokens += s.ids.size();
    for (auto m : s.mask) targets += m;
    longest = std::max(longest, static_cast<int>(s.ids.size()));
  }
  CHECK_EQ(info.num_tokens, tokens);
  CHECK_EQ(info.num_target_tokens, targets);
  CHECK_EQ(info.max_length, longest);
  qt::Dataset d = qt::read_dataset(dir / "a.qtds");
  CHECK(std::equal(samples[3].ids.begin(), samples[3].ids.end(), d.sample_ids(3)));
}

TEST(dataset_rejects_bad_files) {
  TempDir dir;
  auto samples = random_samples(3, 4, 6, 100, 2);
  write_qtds(dir / "good.qtds", samples, 100);
  const auto good = read_bytes(dir / "good.qtds");
  auto expect = [&](std::vector<uint8_t> bytes, qt::ErrorCode code) {
    write_bytes(dir / "bad.qtds", bytes);
    CHECK_THROWS_CODE(qt::inspect_dataset(dir / "bad.qtds"), code);
  };
  expect(std::vector<uint8_t>(good.begin(), good.end() - 1), qt::ErrorCode::BadFile);   // truncated
  expect(std::vector<uint8_t>(good.begin(), good.begin() + 40), qt::ErrorCode::BadFile); // header only
  auto patched = [&](size_t at, uint8_t value) {
    std::vector<uint8_t> v = good;
    if (at < v.size()) v[at] = value;
    return v;
  };
  auto extra = good;
  extra.push_back(0);
  expect(extra, qt::ErrorCode::BadFile);                          // trailing bytes
  expect(patched(0, 'X'), qt::ErrorCode::BadFile);                // magic
  expect(patched(8, 2), qt::ErrorCode::Unsupported);              // version 2
  expect(patched(64 + 8, 0), qt::ErrorCode::BadFile);             // offsets[1] = 0: sample 0 empty
  expect(patched(64 + 8 * 4, 200), qt::ErrorCode::BadFile);       // id 200 >= vocab 100
  expect(patched(good.size() - 1, 7), qt::ErrorCode::BadFile);    // mask value not 0/1
  auto first = samples;
  first[1].mask[0] = 1;  // the first token of a sample can not be a target
  write_qtds(dir / "first.qtds", first, 100);
  CHECK_THROWS_CODE(qt::inspect_dataset(dir / "first.qtds"), qt::ErrorCode::BadFile);
  CHECK_THROWS_CODE(qt::inspect_dataset(dir / "missing.qtds"), qt::ErrorCode::NotFound);
}

// ---- batching -------------------------------------------------------------------------------------------

TEST(batching_fixed_rows_shuffles_each_epoch) {
  std::vector<int> lengths(10, 5);
  qt::TrainConfig c;
  c.batch_rows = 4;
  auto e0 = qt::epoch_plan(lengths, c, {}, 0), e1 = qt::epoch_plan(lengths, c, {}, 1);
  CHECK_EQ(e0.size(), 3u);
  CHECK_EQ(e0[2].size(), 2u);  // the last batch keeps the remainder (drop_last = False)
  for (const auto* plan : {&e0, &e1}) {
    std::multiset<int32_t> seen;
    for (const auto& b : *plan) seen.insert(b.begin(), b.end());
    CHECK_EQ(seen.size(), 10u);
    CHECK_EQ(std::set<int32_t>(seen.begin(), seen.end()).size(), 10u);  // each sample exactly once
  }
  CHECK(e0 != e1);
  CHECK(e0 == qt::epoch_plan(lengths, c, {}, 0));  // seeded: rebuilt identically
  c.seed = 7;
  CHECK(e0 != qt::epoch_plan(lengths, c, {}, 0));
  c.shuffle = false;
  auto fixed = qt::epoch_plan(lengths, c, {}, 3);
  CHECK(fixed[0] == std::vector<int32_t>({0, 1, 2, 3}));
}

TEST(batching_token_budget_groups_lengths) {
  std::vector<int> lengths;
  for (int i = 0; i < 400; i++) lengths.push_back(8 + static_cast<int>(qt::rng_u64(3, static_cast<uint64_t>(i)) % 120));
  qt::TrainConfig c;
  c.token_budget_batching = true;
  c.token_budget = 512;
  auto packed = qt::token_budget_batches(lengths, c);
  auto e0 = qt::epoch_plan(lengths, c, packed, 0), e1 = qt::epoch_plan(lengths, c, packed, 1);
  CHECK_EQ(e0.size(), e1.size());  // same number of steps every epoch
  CHECK(e0 != e1);                 // in a different order
  int64_t padded = 0, real = 0;
  std::set<int32_t> seen;
  for (const auto& b : e0) {
    int longest = 0;
    for (int32_t i : b) {
      longest = std::max(longest, lengths[static_cast<size_t>(i)]);
      real += lengths[static_cast<size_t>(i)];
      CHECK(seen.insert(i).second);
    }
    CHECK(static_cast<int64_t>(b.size()) * longest <= c.token_budget);
    padded += static_cast<int64_t>(b.size()) * longest;
  }
  CHECK_EQ(seen.size(), lengths.size());
  CHECK_MSG(static_cast<double>(real) / padded > 0.9, "padding efficiency " << static_cast<double>(real) / padded);
  // without grouping, rows of random lengths waste far more
  c.group_by_length = false;
  auto ungrouped = qt::token_budget_batches(lengths, c);
  int64_t padded2 = 0;
  for (const auto& b : ungrouped) {
    int longest = 0;
    for (int32_t i : b) longest = std::max(longest, lengths[static_cast<size_t>(i)]);
    padded2 += static_cast<int64_t>(b.size()) * longest;
  }
  CHECK(padded2 > padded);
}

// ---- trainer ------------------------------------------------------------------------------------------

namespace {

struct Setup {
  TempDir dir;
  std::shared_ptr<qt::Model> model;
  std::string train, val;
  Setup(int n_samples = 12, qt::Quant quant = qt::Quant::NF4, TinySpec spec = TinySpec{}) {
    write_tiny_model(dir / "m", spec);
    qt::LoadOptions o;
    o.folder = dir / "m";
    o.quant = quant;
    model = qt::load_model(o);
    train = dir / "train.qtds";
    val = dir / "val.qtds";
    write_qtds(train, random_samples(n_samples, 6, 20, spec.vocab, 11), static_cast<uint32_t>(spec.vocab));
    write_qtds(val, random_samples(5, 6, 20, spec.vocab, 12), static_cast<uint32_t>(spec.vocab));
  }
};

qt::TrainConfig small_config() {
  qt::TrainConfig c;
  c.lora.r = 4;
  c.lora.alpha = 8;
  c.lora.dropout = 0.1f;
  c.lora.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  c.lr = 5e-3f;
  c.total_steps = 30;
  c.warmup_steps = 2;
  c.batch_rows = 4;
  c.neftune_alpha = 5.0f;
  c.grad_checkpointing = true;
  return c;
}

std::vector<float> params_of(const qt::Trainer& t) {
  auto ad = qt::trainer_adapter(t);
  const float* p = ad->params.as<float>();
  return std::vector<float>(p, p + ad->layout.num_params);
}

}  // namespace

TEST(train_overfits_one_batch) {
  Setup s(4, qt::Quant::NF4);
  qt::TrainConfig c = small_config();
  c.lora.dropout = 0;
  c.neftune_alpha = 0;
  c.schedule = qt::Schedule::Constant;
  c.warmup_steps = 0;
  c.lr = 2e-2f;
  c.total_steps = 60;
  auto t = qt::create_trainer(s.model, c, s.train);
  CHECK_EQ(qt::trainer_steps_per_epoch(*t), 1);
  float first = 0, last = 0;
  for (int i = 0; i < 60; i++) {
    qt::StepMetrics m = qt::trainer_step(*t, nullptr);
    if (i == 0) first = m.loss;
    last = m.loss;
    CHECK(std::isfinite(m.loss) && m.grad_norm > 0);
  }
  CHECK_MSG(last < first / 2, "loss " << first << " -> " << last);
  CHECK_EQ(qt::trainer_step_count(*t), 60);
}

static void resume_case(qt::TrainConfig c, int n_samples) {
  Setup s(n_samples, qt::Quant::NF4);
  // run A: 10 steps straight
  auto a = qt::create_trainer(s.model, c, s.train);
  std::vector<float> losses_a;
  for (int i = 0; i < 10; i++) losses_a.push_back(qt::trainer_step(*a, nullptr).loss);
  // run B: 5 steps, save; a FRESH trainer loads it and runs 5 more
  auto b = qt::create_trainer(s.model, c, s.train);
  for (int i = 0; i < 5; i++) qt::trainer_step(*b, nullptr);
  qt::trainer_save_checkpoint(*b, s.dir / "ckpt");
  b.reset();
  auto fresh = qt::create_trainer(s.model, c, s.train);
  qt::trainer_load_checkpoint(*fresh, s.dir / "ckpt");
  CHECK_EQ(qt::trainer_step_count(*fresh), 5);
  for (int i = 5; i < 10; i++) {
    qt::StepMetrics m = qt::trainer_step(*fresh, nullptr);
    CHECK_EQ(m.loss, losses_a[static_cast<size_t>(i)]);
    CHECK_EQ(m.step, i + 1);
  }
  CHECK(params_of(*a) == params_of(*fresh));  // bit-identical
}

TEST(train_resume_is_bit_identical_fixed_rows) {
  // 12 samples, batch 4: 3 steps per epoch, so the 10 steps cross three epoch boundaries (reshuffles)
  resume_case(small_config(), 12);
}

TEST(train_resume_is_bit_identical_token_budget_accum) {
  qt::TrainConfig c = small_config();
  c.token_budget_batching = true;
  c.token_budget = 48;
  c.grad_accum = 2;
  c.grad_checkpointing = false;
  c.max_grad_norm = 0.05f;  // clipping active
  c.weight_decay = 0.01f;
  resume_case(c, 20);
}

TEST(train_grad_accumulation_means_over_all_tokens) {
  // one step of 2 micro-batches x 2 rows == one step of 1 x 4 rows (same samples, no randomness)
  Setup s(4, qt::Quant::None);
  qt::TrainConfig c = small_config();
  c.lora.dropout = 0;
  c.neftune_alpha = 0;
  c.shuffle = false;
  c.warmup_steps = 0;
  c.schedule = qt::Schedule::Constant;
  c.batch_rows = 4;
  auto one = qt::create_trainer(s.model, c, s.train);
  c.batch_rows = 2;
  c.grad_accum = 2;
  auto two = qt::create_trainer(s.model, c, s.train);
  CHECK_EQ(qt::trainer_steps_per_epoch(*two), 1);
  for (int k = 0; k < 2; k++) {  // the first step only trains B (A's gradient is 0 while B = 0), so take two
    qt::StepMetrics m1 = qt::trainer_step(*one, nullptr), m2 = qt::trainer_step(*two, nullptr);
    CHECK_NEAR(m1.loss, m2.loss, 1e-5);
    CHECK_NEAR(m1.grad_norm, m2.grad_norm, 1e-4 * m1.grad_norm);
    CHECK_EQ(m1.tokens, m2.tokens);
    CHECK_EQ(m1.samples, 4);
  }
  auto p1 = params_of(*one), p2 = params_of(*two);
  for (size_t i = 0; i < p1.size(); i++) CHECK_NEAR(p1[i], p2[i], 1e-4);
}

TEST(train_metrics_and_epochs) {
  Setup s(10, qt::Quant::NF4);
  qt::TrainConfig c = small_config();
  c.batch_rows = 4;  // 3 micro-batches per epoch (4, 4, 2)
  auto t = qt::create_trainer(s.model, c, s.train);
  qt::Dataset d = qt::read_dataset(s.train);
  CHECK_EQ(qt::trainer_steps_per_epoch(*t), 3);
  int64_t tokens = 0;
  int samples = 0;
  double epoch = 0;
  for (int i = 0; i < 3; i++) {
    qt::StepMetrics m = qt::trainer_step(*t, nullptr);
    CHECK(m.padded_tokens >= m.tokens && m.seconds >= 0);
    CHECK_NEAR(m.lr, qt::schedule_lr(c, i), 0);
    tokens += m.tokens;
    samples += m.samples;
    epoch = m.epoch;
    if (i == 0) CHECK_NEAR(m.epoch, 1.0 / 3, 1e-12);
  }
  CHECK_EQ(tokens, static_cast<int64_t>(d.num_tokens));  // every token of the epoch seen once
  CHECK_EQ(samples, 10);
  CHECK_NEAR(epoch, 1.0, 0);
  qt::MemoryReport mem = qt::model_memory(*s.model);
  CHECK(mem.lora_bytes >= 4 * sizeof(float) * qt::trainer_adapter(*t)->layout.num_params);  // params + grads + m + v
  CHECK(mem.activations_bytes > 0);
}

TEST(evaluate_is_mean_loss_over_targets) {
  Setup s(6, qt::Quant::NF4);
  qt::TrainConfig c = small_config();
  auto t = qt::create_trainer(s.model, c, s.train);
  for (int i = 0; i < 3; i++) qt::trainer_step(*t, nullptr);
  const double ev = qt::trainer_evaluate(*t, s.val, nullptr);
  // reference: per sample forward_logits (no dropout, no NEFTune), CE on masked targets
  qt::Dataset d = qt::read_dataset(s.val);
  auto ad = qt::trainer_adapter(*t);
  const int V = s.model->config.vocab_size;
  double sum = 0;
  int64_t count = 0;
  for (int i = 0; i < d.num_samples; i++) {
    std::vector<int32_t> ids(d.sample_ids(i), d.sample_ids(i) + d.length(i));
    auto logits = qt::forward_logits(s.model, ad.get(), ids);
    for (int tpos = 1; tpos < d.length(i); tpos++) {
      if (!d.sample_mask(i)[tpos]) continue;
      const float* row = logits.data() + static_cast<size_t>(tpos - 1) * V;
      double mx = *std::max_element(row, row + V), z = 0;
      for (int j = 0; j < V; j++) z += std::exp(row[j] - mx);
      sum += mx + std::log(z) - row[ids[static_cast<size_t>(tpos)]];
      count++;
    }
  }
  CHECK_NEAR(ev, sum / count, 1e-5);
  // evaluation has no side effects on training
  CHECK_EQ(qt::trainer_step_count(*t), 3);
  CHECK_NEAR(qt::trainer_evaluate(*t, s.val, nullptr), ev, 0);
}

TEST(train_rejects_bad_settings_and_sets) {
  Setup s(6, qt::Quant::NF4);
  auto expect = [&](auto mutate, qt::ErrorCode code) {
    qt::TrainConfig c = small_config();
    mutate(c);
    CHECK_THROWS_CODE(qt::create_trainer(s.model, c, s.train), code);
  };
  expect([](qt::TrainConfig& c) { c.lr = 0; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.lr = -1e-4f; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.total_steps = 0; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.lora.r = 0; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.lora.dropout = 1.0f; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.grad_accum = 0; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.batch_rows = 0; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) { c.beta2 = 1.0f; }, qt::ErrorCode::InvalidArgument);
  expect([](qt::TrainConfig& c) {
    c.token_budget_batching = true;
    c.token_budget = 8;  // shorter than the longest sample
  }, qt::ErrorCode::InvalidArgument);
  qt::TrainConfig c = small_config();
  CHECK_THROWS_CODE(qt::create_trainer(s.model, c, s.dir / "none.qtds"), qt::ErrorCode::NotFound);
  write_qtds(s.dir / "big.qtds", random_samples(3, 5, 9, 1000, 3), 1000);  // ids >= the model's 320
  CHECK_THROWS_CODE(qt::create_trainer(s.model, c, s.dir / "big.qtds"), qt::ErrorCode::InvalidArgument);
  auto t = qt::create_trainer(s.model, c, s.train);
  CHECK_THROWS_CODE(qt::trainer_evaluate(*t, s.dir / "big.qtds", nullptr), qt::ErrorCode::InvalidArgument);
}

TEST(train_cancel_leaves_state_unchanged) {
  Setup s(8, qt::Quant::NF4);
  qt::TrainConfig c = small_config();
  auto a = qt::create_trainer(s.model, c, s.train);
  auto b = qt::create_trainer(s.model, c, s.train);
  qt::CancelToken cancel{true};
  CHECK_THROWS_CODE(qt::trainer_step(*b, &cancel), qt::ErrorCode::Cancelled);
  CHECK_THROWS_CODE(qt::trainer_evaluate(*b, s.val, &cancel), qt::ErrorCode::Cancelled);
  CHECK_EQ(qt::trainer_step_count(*b), 0);
  for (int i = 0; i < 3; i++) CHECK_EQ(qt::trainer_step(*a, nullptr).loss, qt::trainer_step(*b, nullptr).loss);
  CHECK(params_of(*a) == params_of(*b));
}

TEST(checkpoint_rejects_mismatches_and_keeps_folders_safe) {
  Setup s(8, qt::Quant::NF4);
  qt::TrainConfig c = small_config();
  auto t = qt::create_trainer(s.model, c, s.train);
  qt::trainer_step(*t, nullptr);
  const std::string ck = s.dir / "ck";
  qt::trainer_save_checkpoint(*t, ck);
  CHECK(fs::exists(ck + "/adapter_model.safetensors") && fs::exists(ck + "/optimizer.safetensors") &&
        fs::exists(ck + "/trainer_state.json") && fs::exists(ck + "/adapter_config.json"));
  qt::trainer_save_checkpoint(*t, ck);  // overwriting a checkpoint with a checkpoint is fine
  for (const auto& e : fs::directory_iterator(s.dir.path))  // no temp folders left behind
    CHECK_MSG(e.path().filename().string().find(".tmp-") == std::string::npos, e.path());
  // another training set
  auto other = qt::create_trainer(s.model, c, s.val);
  CHECK_THROWS_CODE(qt::trainer_load_checkpoint(*other, ck), qt::ErrorCode::InvalidArgument);
  // another LoRA rank
  qt::TrainConfig c8 = c;
  c8.lora.r = 8;
  auto r8 = qt::create_trainer(s.model, c8, s.train);
  CHECK_THROWS_CODE(qt::trainer_load_checkpoint(*r8, ck), qt::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(qt::trainer_load_checkpoint(*r8, s.dir / "missing"), qt::ErrorCode::NotFound);
  // a corrupt optimizer file: BAD_FILE, and the trainer is unchanged
  auto fresh = qt::create_trainer(s.model, c, s.train);
  auto before = params_of(*fresh);
  auto bytes = read_bytes(ck + "/optimizer.safetensors");
  write_bytes(ck + "/optimizer.safetensors", std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() - 10)));
  CHECK_THROWS_CODE(qt::trainer_load_checkpoint(*fresh, ck), qt::ErrorCode::BadFile);
  CHECK(params_of(*fresh) == before);
  CHECK_EQ(qt::trainer_step_count(*fresh), 0);
  // a folder holding other files is never replaced
  fs::create_directories(s.dir / "mine");
  qt::write_file(s.dir / "mine/notes.txt", "keep me");
  CHECK_THROWS_CODE(qt::trainer_save_checkpoint(*t, s.dir / "mine"), qt::ErrorCode::InvalidArgument);
  CHECK_EQ(qt::read_text_file(s.dir / "mine/notes.txt"), std::string("keep me"));
}

TEST(two_trainers_share_one_model_concurrently) {
  // engine.h: several trainers may share one Model from different threads; results equal a sequential run
  Setup s(8, qt::Quant::NF4);
  qt::TrainConfig c = small_config();
  auto ref = qt::create_trainer(s.model, c, s.train);
  for (int i = 0; i < 4; i++) qt::trainer_step(*ref, nullptr);
  auto a = qt::create_trainer(s.model, c, s.train);
  auto b = qt::create_trainer(s.model, c, s.train);
  std::thread ta([&] { for (int i = 0; i < 4; i++) qt::trainer_step(*a, nullptr); });
  std::thread tb([&] { for (int i = 0; i < 4; i++) qt::trainer_step(*b, nullptr); });
  ta.join();
  tb.join();
  CHECK(params_of(*a) == params_of(*ref));
  CHECK(params_of(*b) == params_of(*ref));
}
