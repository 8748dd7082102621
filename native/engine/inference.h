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
  int position() const { return pos_; }

 private:
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
