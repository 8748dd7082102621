// Test fixtures written by code (no downloads): tiny random Hugging Face model folders (real config.json +
// safetensors, Llama / Mistral / Qwen2 flavours, optionally sharded with an index) and .qtds training sets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qtest {

struct TinySpec {
  std::string arch = "LlamaForCausalLM";  // | "MistralForCausalLM" | "Qwen2ForCausalLM"
  int vocab = 320, hidden = 32, ffn = 64, layers = 2, heads = 4, kv_heads = 2;
  int head_dim = 0;          // 0: hidden / heads (not written to config.json)
  bool tied = false;
  std::string dtype = "BF16";  // BF16 | F16 | F32
  int shards = 1;            // > 1: model-0000i-of-0000n.safetensors + model.safetensors.index.json
  bool llama3_rope = false;  // rope_scaling {rope_type: llama3, ...}
  float rope_theta = 10000.0f;
  int max_pos = 512;
  uint64_t seed = 1;
  float weight_scale = 1.0f; // multiplies the linear weights' std (1/sqrt(in))
};

/** Writes config.json + safetensors of a random tiny model into dir (created). */
void write_tiny_model(const std::string& dir, const TinySpec& spec);

/** A fresh empty folder under the system temp dir, removed (with its contents) on destruction. */
struct TempDir {
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

struct Sample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // 1 = target (mask[0] must be 0)
};

/** Writes a .qtds file (FORMATS.md). */
void write_qtds(const std::string& path, const std::vector<Sample>& samples, uint32_t vocab_size);

/** n random samples with lengths in [min_len, max_len]: ids in [0, vocab); the first third of each sample
 *  untrained (mask 0, a "prompt"), the rest trained. */
std::vector<Sample> random_samples(int n, int min_len, int max_len, int vocab, uint64_t seed);

/** Values rounded to bf16 (nearest even, as dtype.h f32_to_bf16), and bf16 values widened back (exact). */
std::vector<uint16_t> bf16_of(const std::vector<float>& v);
std::vector<float> f32_of(const std::vector<uint16_t>& h);

std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace qtest
