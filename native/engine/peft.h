// PEFT adapter folders (ENGINE_FACTS §5): adapter_config.json + adapter_model.safetensors with keys
// base_model.model.model.layers.{i}.{self_attn|mlp}.{q_proj|...}.lora_A.weight [r, in] / lora_B.weight [out, r].
#pragma once

#include <string>

#include "model.h"

namespace qt {

extern const char* const kPeftConfigFile;   // "adapter_config.json"
extern const char* const kPeftWeightsFile;  // "adapter_model.safetensors"

std::string peft_key(int layer, int target, bool is_b);

/** Writes the two PEFT files into an existing folder (no atomicity; callers use AtomicFolder). */
void write_peft_files(const Adapter& adapter, const std::string& dir, const PeftMeta& meta);

/** The LoraConfig of <dir>/adapter_config.json (Unsupported for PEFT features the engine cannot apply). */
LoraConfig read_peft_config(const std::string& dir);

/** Loads <dir>/adapter_model.safetensors into an adapter whose config matches (ShapeMismatch / NotFound /
 *  Unsupported naming the key otherwise). */
void read_peft_weights(Adapter& adapter, const std::string& dir);

}  // namespace qt
