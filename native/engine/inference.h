// KV-cached decoding of one sequence (used by generate(); tests compare it with full recomputation).
#pragma once

#include <memory>
#include <vector>

#include "model.h"

namespace qt {

class Decoder {
 public:
  /** capacity: the most positions this session will hold (prompt + new tokens). */
  Decoder(const std::shared_ptr<Model>& model, const Adapter* adapter, int capacity);
  /** Appends n tokens (a prefill when n > 1) and returns the logits [V] after the last one. */
  const std::vector<float>& feed(const int32_t* ids, int n, CancelToken* cancel);
  /** Appends n tokens and returns the greedy next token, the first maximum of the logits after the last one, found on
   *  the backend (Backend::argmax_rows: one id downloaded instead of V logits); -1 when those logits hold a NaN. */
  int32_t feed_greedy(const int32_t* ids, int n, CancelToken* cancel);
  /** The logits [V] after the last token fed (downloaded now; for after feed_greedy). */
  const std::vector<float>& logits();
  int position() const { return pos_; }

 private:
  /** model_forward of n more tokens, then the lm_head of the last one into acts_.logits (on the backend). */
  void forward(const int32_t* ids, int n, CancelToken* cancel);

  std::shared_ptr<Model> model_;
  const Adapter* adapter_;
  Activations acts_;
  KvCache kv_;
  int pos_ = 0;
  std::vector<float> logits_;
};

/** Checks that ids are valid tokens of the model (InvalidArgument naming the first bad one). */
void check_token_ids(const Model& m, const int32_t* ids, size_t n, const char* what);
/** Checks that the adapter was created for this model (InvalidArgument otherwise). */
void check_adapter_model(const Model& m, const Adapter* adapter);

}  // namespace qt
