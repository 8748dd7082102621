// config.json -> ModelConfig, and the tensors a Llama-family checkpoint must hold (names and shapes).
#pragma once

#include <string>
#include <vector>

#include "engine.h"

namespace qt {

/** Reads <folder>/config.json. Errors name the file and the field: NotFound (no config.json), BadFile
 *  (missing/ill-typed/inconsistent field), Unsupported (architecture, activation, rope scaling type). */
ModelConfig read_model_config(const std::string& folder);

/** Parses a config.json text (what is used in messages). */
ModelConfig parse_model_config(const std::string& text, const std::string& what);

// The seven decoder-layer linears, in this order everywhere (LoRA slots, PEFT keys, loading).
enum Target { TQ = 0, TK, TV, TO, TGATE, TUP, TDOWN, NUM_TARGETS };
const char* target_name(int t);          // "q_proj", ..., "down_proj"
const char* target_module(int t);        // "self_attn" or "mlp"
int target_from_name(const std::string& s);  // "q_proj" or "q" -> TQ; -1 when unknown
int target_in_features(const ModelConfig& c, int t);
int target_out_features(const ModelConfig& c, int t);
std::string layer_weight_name(int layer, int t);  // "model.layers.3.self_attn.q_proj.weight"

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
/** Every tensor the model needs, with its shape (biases for Qwen2; lm_head unless tied). */
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

}  // namespace qt
