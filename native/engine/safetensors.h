// safetensors reading (memory-mapped, every header field bounds-checked) and writing.
// Format (huggingface/safetensors): u64 little-endian header length n, n bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data; offsets are relative to the end of the header. A model folder holds model.safetensors
// or shards listed in model.safetensors.index.json ({"weight_map": {"name": "shard file"}}).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"
#include "files.h"

namespace qt {

struct StTensor {
  std::string name;
  std::string dtype;            // as written: "BF16", "F32", "U8", ...
  std::vector<int64_t> shape;
  int64_t numel = 0;
  size_t offset = 0;            // absolute byte offset in the file
  size_t nbytes = 0;
};

/** One safetensors file, mapped. Throws BadFile (corrupt/truncated header, offsets outside the file, size
 *  that disagrees with dtype x shape), Unsupported (unknown dtype string), NotFound, Io. */
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_.path(); }
  const std::vector<StTensor>& tensors() const { return tensors_; }
  const StTensor* find(const std::string& name) const;
  const uint8_t* data(const StTensor& t) const { return file_.data() + t.offset; }

 private:
  MappedFile file_;
  std::vector<StTensor> tensors_;
  std::map<std::string, size_t> index_;
};

/** The safetensors of a model folder: model.safetensors, or the shards of model.safetensors.index.json. */
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::string& folder);
  struct Ref {
    const SafetensorsFile* file = nullptr;
    const StTensor* tensor = nullptr;
  };
  Ref find(const std::string& name) const;  // {nullptr, nullptr} when missing
  std::vector<Ref> all() const;              // every tensor, in file then header order
  size_t num_files() const { return files_.size(); }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Ref> by_name_;
};

/** Element size of a safetensors dtype string; 0 when unknown. */
size_t st_dtype_size(const std::string& dtype);
/** "F32"/"F16"/"BF16" -> DType; false for anything else. */
bool st_compute_dtype(const std::string& dtype, DType* out);

/** The tensor converted to fp32 (F32/F16/BF16 only; Unsupported otherwise, naming file and tensor). */
std::vector<float> st_read_f32(const SafetensorsFile& file, const StTensor& t);

// ---- writing ------------------------------------------------------------------------------------------

struct StWriteTensor {
  std::string name;
  std::string dtype;            // "F32", "BF16", "F16", "I32", "U8", "I64", ...
  std::vector<int64_t> shape;
  const void* data = nullptr;   // numel * dtype size bytes
};

/** Writes a safetensors file (header padded with spaces to 8 bytes, tensors in the given order). */
void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qt
