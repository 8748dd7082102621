// Inference: full-sequence logits (forward_logits) and KV-cached generation with HF-style sampling.
// The adapter, when given, is applied unmerged (the LoRA path runs beside the frozen base, without dropout).
#include <algorithm>
#include <chrono>

#include "inference.h"
#include "sampling.h"

namespace qt {

void check_token_ids(const Model& m, const int32_t* ids, size_t n, const char* what) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= m.config.vocab_size)
      QT_FAIL(ErrorCode::InvalidArgument, std::string(what) + ": token id " + std::to_string(ids[i]) + " at position " +
                                              std::to_string(i) + " is outside the model's vocabulary (size " +
                                              std::to_string(m.config.vocab_size) + ")");
}

namespace {

// An allocation for a context of n tokens failed: a plain message (the partial allocations are freed by RAII).
[[noreturn]] void context_out_of_memory(const Model& m, const Error& e, int n) {
  QT_FAIL(ErrorCode::OutOfMemory, std::string(m.be != &cpu_backend() ? "GPU out of memory" : "out of memory") +
                                      " for a context of " + std::to_string(n) +
                                      " tokens; shorten the prompt or the answer length (" + e.what() + ")");
}

}  // namespace

void check_adapter_model(const Model& m, const Adapter* adapter) {
  if (adapter && adapter->model.get() != &m)
    QT_FAIL(ErrorCode::InvalidArgument, "the adapter belongs to another loaded model");
}

Decoder::Decoder(const std::shared_ptr<Model>& model, const Adapter* adapter, int capacity)
    : model_(model), adapter_(adapter) {
  alloc_kv_cache(kv_, *model_, capacity);
}

void Decoder::forward(const int32_t* ids, int n, CancelToken* cancel) {
  const Model& m = *model_;
  QT_CHECK(n > 0 && pos_ + n <= kv_.capacity, ErrorCode::Internal, "Decoder: KV cache capacity exceeded");
  if (acts_.capacity < n)
    alloc_activations(acts_, m, ActMode::Inference, n, adapter_ ? adapter_->config.r : 0,
                      adapter_ ? lora_max_in_features(m.config, adapter_->config) : 0);
  m.be->upload(acts_.ids, ids, static_cast<size_t>(n) * sizeof(int32_t));
  Pass p;
  p.B = 1;
  p.T = n;
  p.pos0 = pos_;
  p.cache = &kv_;
  model_forward(m, adapter_, acts_, p, cancel);
  model_row_logits(m, acts_, n - 1);
  pos_ += n;
}

const std::vector<float>& Decoder::logits() {
  logits_.resize(static_cast<size_t>(model_->config.vocab_size));
  model_->be->download(logits_.data(), acts_.logits, logits_.size() * sizeof(float));
  return logits_;
}

const std::vector<float>& Decoder::feed(const int32_t* ids, int n, CancelToken* cancel) {
  forward(ids, n, cancel);
  return logits();
}

int32_t Decoder::feed_greedy(const int32_t* ids, int n, CancelToken* cancel) {
  forward(ids, n, cancel);
  const Backend& be = *model_->be;
  be.argmax_rows(acts_.targets, acts_.logits, 1, model_->config.vocab_size);  // targets: unused outside training
  int32_t tok = -1;
  be.download(&tok, acts_.targets, sizeof(tok));
  return tok;
}

std::vector<float> forward_logits(const std::shared_ptr<Model>& model, const Adapter* adapter,
                                  const std::vector<int32_t>& ids) {
  QT_CHECK(model != nullptr, ErrorCode::InvalidArgument, "forward_logits: no model");
  QT_CHECK(!ids.empty(), ErrorCode::InvalidArgument, "forward_logits: no token ids");
  const Model& m = *model;
  check_adapter_model(m, adapter);
  check_token_ids(m, ids.data(), ids.size(), "forward_logits");
  bind_device(m);
  if (static_cast<int64_t>(ids.size()) > m.config.max_position)
    QT_FAIL(ErrorCode::InvalidArgument, "forward_logits: " + std::to_string(ids.size()) +
                                            " tokens exceed the model's context of " + std::to_string(m.config.max_position));
  const int n = static_cast<int>(ids.size());
  std::vector<float> out(static_cast<size_t>(n) * m.config.vocab_size);
  try {
    Activations a;
    alloc_activations(a, m, ActMode::Inference, n, adapter ? adapter->config.r : 0,
                      adapter ? lora_max_in_features(m.config, adapter->config) : 0);
    m.be->upload(a.ids, ids.data(), ids.size() * sizeof(int32_t));
    Pass p;
    p.B = 1;
    p.T = n;
    model_forward(m, adapter, a, p, nullptr);
    model_logits(m, a, 0, n, out.data());
  } catch (const Error& e) {
    if (e.code() != ErrorCode::OutOfMemory) throw;
    context_out_of_memory(m, e, n);
  }
  return out;
}

GenerateResult generate(const std::shared_ptr<Model>& model, const Adapter* adapter, const std::vector<int32_t>& prompt,
                        const SamplingConfig& s, const std::function<void(int32_t)>& on_token, CancelToken* cancel) {
  using clock = std::chrono::steady_clock;
  QT_CHECK(model != nullptr, ErrorCode::InvalidArgument, "generate: no model");
  const Model& m = *model;
  bind_device(m);
  check_adapter_model(m, adapter);
  if (prompt.empty()) QT_FAIL(ErrorCode::InvalidArgument, "generate: the prompt is empty");
  check_token_ids(m, prompt.data(), prompt.size(), "generate (prompt)");
  check_token_ids(m, s.stop_ids.data(), s.stop_ids.size(), "generate (stop ids)");
  if (s.max_new_tokens < 0) QT_FAIL(ErrorCode::InvalidArgument, "generate: max_new_tokens must be >= 0");
  if (!(s.temperature >= 0)) QT_FAIL(ErrorCode::InvalidArgument, "generate: temperature must be >= 0");
  if (s.top_k < 0) QT_FAIL(ErrorCode::InvalidArgument, "generate: top_k must be >= 0");
  if (!(s.top_p > 0 && s.top_p <= 1)) QT_FAIL(ErrorCode::InvalidArgument, "generate: top_p must be in (0, 1]");
  if (!(s.repetition_penalty > 0)) QT_FAIL(ErrorCode::InvalidArgument, "generate: repetition_penalty must be > 0");
  const int P = static_cast<int>(prompt.size());
  if (P >= m.config.max_position)
    QT_FAIL(ErrorCode::InvalidArgument, "generate: the prompt (" + std::to_string(P) + " tokens) fills the model's context of " +
                                            std::to_string(m.config.max_position));
  const int max_new = std::min(s.max_new_tokens, m.config.max_position - P);

  GenerateResult r;
  std::vector<int32_t> history(prompt);
  try {
    check_cancel(cancel);
    auto t0 = clock::now();
    Decoder dec(model, adapter, P + std::max(max_new, 1));
    // Feeds n tokens and picks the next one (new token i): plain greedy decoding finds it on the backend, which
    // downloads one id instead of the logits (a NaN among them, or any other sampling: on the host, sample_next).
    const bool backend_greedy = s.temperature <= 0.0f && s.repetition_penalty == 1.0f;
    auto feed_and_pick = [&](const int32_t* ids, int n, int i) -> int32_t {
      if (backend_greedy) {
        const int32_t t = dec.feed_greedy(ids, n, cancel);
        if (t >= 0) return t;
        std::vector<float> lg = dec.logits();
        return sample_next(lg, s, history, s.seed, static_cast<uint64_t>(i));
      }
      std::vector<float> lg = dec.feed(ids, n, cancel);
      return sample_next(lg, s, history, s.seed, static_cast<uint64_t>(i));
    };
    int32_t tok = 0;
    if (max_new > 0) tok = feed_and_pick(prompt.data(), P, 0);
    else dec.feed(prompt.data(), P, cancel);
    auto t1 = clock::now();
    r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
    r.finish = FinishReason::Length;
    for (int i = 0; i < max_new; i++) {
      r.tokens.push_back(tok);
      history.push_back(tok);
      if (on_token) on_token(tok);
      if (std::find(s.stop_ids.begin(), s.stop_ids.end(), tok) != s.stop_ids.end()) {
        r.finish = FinishReason::Stop;
        break;
      }
      if (i + 1 == max_new) break;
      check_cancel(cancel);
      const int32_t fed = tok;
      tok = feed_and_pick(&fed, 1, i + 1);
    }
    r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::OutOfMemory) context_out_of_memory(m, e, P + std::max(max_new, 1));
    if (e.code() != ErrorCode::Cancelled) throw;
    r.finish = FinishReason::Cancelled;
  }
  return r;
}

}  // namespace qt
