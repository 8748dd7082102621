// Training-set files (*.qtds, FORMATS.md): read whole, every field bounds-checked (BAD_FILE otherwise).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine.h"

namespace qt {

struct Dataset {
  std::string path;
  int num_samples = 0;
  uint64_t num_tokens = 0;
  uint32_t vocab_size = 0;
  std::vector<uint64_t> offsets;  // [N + 1]
  std::vector<int32_t> ids;       // [T]
  std::vector<uint8_t> mask;      // [T]
  uint64_t fingerprint = 0;       // FNV-1a of the file bytes (checkpoints refuse another set)

  int length(int i) const { return static_cast<int>(offsets[static_cast<size_t>(i) + 1] - offsets[static_cast<size_t>(i)]); }
  const int32_t* sample_ids(int i) const { return ids.data() + offsets[static_cast<size_t>(i)]; }
  const uint8_t* sample_mask(int i) const { return mask.data() + offsets[static_cast<size_t>(i)]; }
};

Dataset read_dataset(const std::string& path);

}  // namespace qt
