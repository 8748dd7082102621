// Generation: greedy equals the argmax of full recomputation, determinism, stop ids, length, cancel,
// seeded sampling, and the HF semantics of repetition penalty, top-k and top-p.
#include <algorithm>

#include "fixtures.h"
#include "harness.h"
#include "model.h"
#include "rng.h"
#include "sampling.h"

using namespace qtest;

namespace {
struct Loaded {
  TempDir dir;
  std::shared_ptr<qt::Model> model;
  std::shared_ptr<qt::Adapter> adapter;
  explicit Loaded(TinySpec spec = TinySpec{}) {
    spec.weight_scale = 3.0f;  // peakier distributions: fewer near-ties in greedy decoding
    write_tiny_model(dir / "m", spec);
    qt::LoadOptions o;
    o.folder = dir / "m";
    model = qt::load_model(o);
    qt::LoraConfig lc;
    lc.r = 4;
    lc.targets = {"q_proj", "v_proj", "down_proj"};
    adapter = qt::create_adapter(model, lc);
    float* p = adapter->params.as<float>();
    for (size_t i = 0; i < adapter->layout.num_params; i++) p[i] = 0.5f * (2 * qt::rng_uniform(5, i) - 1);
  }
};
}  // namespace

TEST(generate_greedy_is_argmax_of_full_recomputation) {
  Loaded l;
  for (const qt::Adapter* ad : {static_cast<const qt::Adapter*>(nullptr), static_cast<const qt::Adapter*>(l.adapter.get())}) {
    std::vector<int32_t> prompt = {1, 42, 7, 99};
    qt::SamplingConfig s;
    s.max_new_tokens = 12;
    std::vector<int32_t> streamed;
    qt::GenerateResult r = qt::generate(l.model, ad, prompt, s, [&](int32_t t) { streamed.push_back(t); }, nullptr);
    CHECK(r.finish == qt::FinishReason::Length);
    CHECK_EQ(r.tokens.size(), 12u);
    CHECK(streamed == r.tokens);
    std::vector<int32_t> seq = prompt;
    const int V = l.model->config.vocab_size;
    for (int32_t tok : r.tokens) {
      auto logits = qt::forward_logits(l.model, ad, seq);
      const float* last = logits.data() + (seq.size() - 1) * static_cast<size_t>(V);
      CHECK_EQ(static_cast<int32_t>(std::max_element(last, last + V) - last), tok);
      seq.push_back(tok);
    }
    // deterministic
    CHECK(qt::generate(l.model, ad, prompt, s, nullptr, nullptr).tokens == r.tokens);
  }
  // the adapter changes the result (it is applied)
  qt::SamplingConfig s;
  s.max_new_tokens = 12;
  CHECK(qt::generate(l.model, nullptr, {1, 42, 7, 99}, s, nullptr, nullptr).tokens !=
        qt::generate(l.model, l.adapter.get(), {1, 42, 7, 99}, s, nullptr, nullptr).tokens);
}

TEST(generate_stop_ids_and_cancel) {
  Loaded l;
  qt::SamplingConfig s;
  s.max_new_tokens = 10;
  auto full = qt::generate(l.model, nullptr, {3, 4, 5}, s, nullptr, nullptr).tokens;
  size_t k = 1;  // the first generated token not seen before it: stopping on it ends generation there
  while (k < full.size() && std::find(full.begin(), full.begin() + static_cast<long>(k), full[k]) != full.begin() + static_cast<long>(k)) k++;
  CHECK(k < full.size());
  s.stop_ids = {full[k], 319};
  if (full[k] == 319) s.stop_ids = {full[k]};
  qt::GenerateResult r0 = qt::generate(l.model, nullptr, {3, 4, 5}, s, nullptr, nullptr);
  CHECK(r0.finish == qt::FinishReason::Stop);
  CHECK(r0.tokens == std::vector<int32_t>(full.begin(), full.begin() + static_cast<long>(k) + 1));  // stop id included
  s.stop_ids.clear();
  qt::CancelToken cancel{false};
  int seen = 0;
  qt::GenerateResult r = qt::generate(l.model, nullptr, {3, 4, 5}, s, [&](int32_t) {
    if (++seen == 2) cancel = true;
  }, &cancel);
  CHECK(r.finish == qt::FinishReason::Cancelled);
  CHECK(r.tokens == std::vector<int32_t>(full.begin(), full.begin() + 2));
  qt::CancelToken early{true};
  r = qt::generate(l.model, nullptr, {3, 4, 5}, s, nullptr, &early);
  CHECK(r.finish == qt::FinishReason::Cancelled && r.tokens.empty());
}

TEST(generate_greedy_falls_back_to_the_host_when_the_backend_argmax_gives_up) {
  // Greedy decoding picks its token with Backend::argmax_rows; a row with a NaN makes it answer -1, and generate then
  // samples from the downloaded logits on the host. A backend whose argmax always gives up must decode the same tokens.
  Loaded l;
  qt::SamplingConfig s;
  s.max_new_tokens = 10;
  const auto expected = qt::generate(l.model, l.adapter.get(), {3, 14, 15}, s, nullptr, nullptr).tokens;
  static int calls = 0;
  qt::Backend giving_up = *l.model->be;
  giving_up.argmax_rows = [](int32_t* out, const float*, int N, int) {
    calls++;
    const std::vector<int32_t> none(static_cast<size_t>(N), -1);
    std::copy(none.begin(), none.end(), out);  // CPU backend: host memory
  };
  const qt::Backend* cpu = l.model->be;
  l.model->be = &giving_up;
  const auto got = qt::generate(l.model, l.adapter.get(), {3, 14, 15}, s, nullptr, nullptr).tokens;
  l.model->be = cpu;
  CHECK_EQ(calls, 10);  // asked once per new token
  CHECK(got == expected);
}

TEST(generate_sampling_is_seeded) {
  Loaded l;
  qt::SamplingConfig s;
  s.max_new_tokens = 16;
  s.temperature = 1.5f;
  s.seed = 1;
  auto a = qt::generate(l.model, l.adapter.get(), {9, 8}, s, nullptr, nullptr).tokens;
  CHECK(a == qt::generate(l.model, l.adapter.get(), {9, 8}, s, nullptr, nullptr).tokens);
  s.seed = 2;
  CHECK(a != qt::generate(l.model, l.adapter.get(), {9, 8}, s, nullptr, nullptr).tokens);
  s.top_k = 1;  // top-k 1 is greedy whatever the temperature
  qt::SamplingConfig g;
  g.max_new_tokens = 16;
  CHECK(qt::generate(l.model, l.adapter.get(), {9, 8}, s, nullptr, nullptr).tokens ==
        qt::generate(l.model, l.adapter.get(), {9, 8}, g, nullptr, nullptr).tokens);
}

TEST(generate_rejects_bad_arguments) {
  Loaded l;
  Loaded other;
  qt::SamplingConfig s;
  CHECK_THROWS_CODE(qt::generate(l.model, nullptr, {}, s, nullptr, nullptr), qt::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(qt::generate(l.model, nullptr, {1, 320}, s, nullptr, nullptr), qt::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(qt::generate(l.model, other.adapter.get(), {1}, s, nullptr, nullptr), qt::ErrorCode::InvalidArgument);
  s.top_p = 0;
  CHECK_THROWS_CODE(qt::generate(l.model, nullptr, {1}, s, nullptr, nullptr), qt::ErrorCode::InvalidArgument);
  s.top_p = 1;
  s.temperature = -1;
  CHECK_THROWS_CODE(qt::generate(l.model, nullptr, {1}, s, nullptr, nullptr), qt::ErrorCode::InvalidArgument);
  s.temperature = 0;
  CHECK_THROWS_CODE(qt::generate(l.model, nullptr, std::vector<int32_t>(512, 1), s, nullptr, nullptr), qt::ErrorCode::InvalidArgument);
  // near the end of the context, generation stops at the context length
  s.max_new_tokens = 50;
  qt::GenerateResult r = qt::generate(l.model, nullptr, std::vector<int32_t>(500, 1), s, nullptr, nullptr);
  CHECK(r.finish == qt::FinishReason::Length && r.tokens.size() == 12u);
}

TEST(sampling_hf_semantics) {
  qt::SamplingConfig s;
  // repetition penalty: positive logits divided, negative multiplied, each id once
  std::vector<float> x = {2.0f, -1.0f, 1.9f, 0.5f};
  s.repetition_penalty = 2.0f;
  CHECK_EQ(qt::sample_next(x, s, {0, 1, 0}, 0, 0), 2);  // greedy after the penalty
  CHECK(x[0] == 1.0f && x[1] == -2.0f && x[2] == 1.9f);
  s.repetition_penalty = 1.0f;
  // greedy picks the first maximum
  x = {1.0f, 3.0f, 3.0f};
  CHECK_EQ(qt::sample_next(x, s, {}, 0, 0), 1);
  // top-p: probabilities 0.5, 0.3, 0.2. top_p 0.5 keeps only the first (HF removes cum <= 1 - top_p)
  const std::vector<float> p3 = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  s.temperature = 1.0f;
  s.top_p = 0.5f;
  for (uint64_t k = 0; k < 200; k++) {
    x = p3;
    CHECK_EQ(qt::sample_next(x, s, {}, 9, k), 0);
  }
  s.top_p = 0.6f;  // removes only the 0.2 tail
  int counts[3] = {0, 0, 0};
  for (uint64_t k = 0; k < 4000; k++) {
    x = p3;
    counts[qt::sample_next(x, s, {}, 9, k)]++;
  }
  CHECK(counts[2] == 0 && counts[1] > 0);
  CHECK_NEAR(counts[0] / 4000.0, 0.5 / 0.8, 0.03);  // renormalised over the kept tokens
  // top-k keeps ties with the k-th value
  s.top_p = 1.0f;
  s.top_k = 2;
  std::vector<float> tie = {1.0f, 5.0f, 1.0f, 0.0f};
  int tc[4] = {0, 0, 0, 0};
  for (uint64_t k = 0; k < 3000; k++) {
    x = tie;
    tc[qt::sample_next(x, s, {}, 3, k)]++;
  }
  CHECK(tc[3] == 0 && tc[0] > 0 && tc[2] > 0);
  // plain temperature sampling follows the softmax
  s.top_k = 0;
  int c2[3] = {0, 0, 0};
  for (uint64_t k = 0; k < 6000; k++) {
    x = p3;
    c2[qt::sample_next(x, s, {}, 4, k)]++;
  }
  CHECK_NEAR(c2[0] / 6000.0, 0.5, 0.03);
  CHECK_NEAR(c2[2] / 6000.0, 0.2, 0.03);
}
