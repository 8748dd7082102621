// safetensors reader and writer (see safetensors.h). Every number from the header is checked before use:
// header length against the file size, offsets against the data area, byte counts against dtype x shape
// (with overflow checks), so a corrupt or truncated file is a BAD_FILE error, never a crash.
#include "safetensors.h"

#include <algorithm>
#include <filesystem>
#include <limits>

#include "engine.h"
#include "json.h"

namespace fs = std::filesystem;

namespace qt {

size_t st_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

bool st_compute_dtype(const std::string& d, DType* out) {
  if (d == "F32") *out = DType::F32;
  else if (d == "F16") *out = DType::F16;
  else if (d == "BF16") *out = DType::BF16;
  else return false;
  return true;
}

static uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const size_t size = file_.size();
  if (size < 8) QT_FAIL(ErrorCode::BadFile, path + ": truncated safetensors file (" + std::to_string(size) + " bytes)");
  const uint64_t n = read_u64_le(file_.data());
  if (n > size - 8)
    QT_FAIL(ErrorCode::BadFile, path + ": truncated or corrupt safetensors file (header length " + std::to_string(n) +
                                    " exceeds the file size " + std::to_string(size) + ")");
  if (n > 100u * 1024 * 1024) QT_FAIL(ErrorCode::BadFile, path + ": safetensors header larger than 100 MB");
  const size_t data_start = 8 + static_cast<size_t>(n);
  const size_t data_size = size - data_start;

  json::Value header = json::parse(reinterpret_cast<const char*>(file_.data()) + 8, static_cast<size_t>(n), path + " (header)");
  if (!header.is_object()) QT_FAIL(ErrorCode::BadFile, path + ": safetensors header is not a JSON object");

  for (const auto& [name, info] : header.object) {
    if (name == "__metadata__") continue;
    const std::string where = path + ": tensor '" + name + "'";
    if (!info.is_object()) QT_FAIL(ErrorCode::BadFile, where + ": entry is not an object");
    const json::Value* dt = info.find("dtype");
    const json::Value* shape = info.find("shape");
    const json::Value* offs = info.find("data_offsets");
    if (!dt || !dt->is_string()) QT_FAIL(ErrorCode::BadFile, where + ": missing 'dtype'");
    if (!shape || !shape->is_array()) QT_FAIL(ErrorCode::BadFile, where + ": missing 'shape'");
    if (!offs || !offs->is_array() || offs->array.size() != 2) QT_FAIL(ErrorCode::BadFile, where + ": bad 'data_offsets'");
    StTensor t;
    t.name = name;
    t.dtype = dt->string;
    const size_t esize = st_dtype_size(t.dtype);
    if (esize == 0) QT_FAIL(ErrorCode::Unsupported, where + ": unsupported dtype '" + t.dtype + "'");
    uint64_t numel = 1;
    for (const auto& d : shape->array) {
      if (!d.is_number() || !d.is_int || d.integer < 0) QT_FAIL(ErrorCode::BadFile, where + ": bad dimension in 'shape'");
      t.shape.push_back(d.integer);
      if (d.integer != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(d.integer))
        QT_FAIL(ErrorCode::BadFile, where + ": shape too large");
      numel *= static_cast<uint64_t>(d.integer);
    }
    for (const auto& o : offs->array)
      if (!o.is_number() || !o.is_int || o.integer < 0) QT_FAIL(ErrorCode::BadFile, where + ": bad 'data_offsets'");
    const uint64_t begin = static_cast<uint64_t>(offs->array[0].integer);
    const uint64_t end = static_cast<uint64_t>(offs->array[1].integer);
    if (begin > end) QT_FAIL(ErrorCode::BadFile, where + ": data_offsets begin > end");
    if (end > data_size)
      QT_FAIL(ErrorCode::BadFile, where + ": data ends at byte " + std::to_string(end) + " but the file holds only " +
                                      std::to_string(data_size) + " data bytes (truncated file?)");
    if (end - begin != numel * esize)
      QT_FAIL(ErrorCode::BadFile, where + ": holds " + std::to_string(end - begin) + " bytes but dtype and shape need " +
                                      std::to_string(numel * esize));
    t.numel = static_cast<int64_t>(numel);
    t.offset = data_start + static_cast<size_t>(begin);
    t.nbytes = static_cast<size_t>(end - begin);
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
}

const StTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsSet::SafetensorsSet(const std::string& folder) {
  std::error_code ec;
  const std::string index_path = folder + "/model.safetensors.index.json";
  const std::string single_path = folder + "/model.safetensors";
  if (fs::exists(fs::u8path(index_path), ec)) {
    json::Value idx = json::parse(read_text_file(index_path), index_path);
    const json::Value* wm = idx.find("weight_map");
    if (!wm || !wm->is_object() || wm->object.empty())
      QT_FAIL(ErrorCode::BadFile, index_path + ": missing or empty 'weight_map'");
    std::map<std::string, size_t> shard_index;
    for (const auto& [name, shard] : wm->object) {
      if (!shard.is_string()) QT_FAIL(ErrorCode::BadFile, index_path + ": weight_map['" + name + "'] is not a file name");
      const std::string& s = shard.string;
      if (s.empty() || s.find('/') != std::string::npos || s.find('\\') != std::string::npos || s == "." || s == "..")
        QT_FAIL(ErrorCode::BadFile, index_path + ": shard name '" + s + "' must be a plain file name in the folder");
      if (!shard_index.count(s)) {
        shard_index[s] = files_.size();
        files_.push_back(std::make_unique<SafetensorsFile>(folder + "/" + s));
      }
      const SafetensorsFile* f = files_[shard_index[s]].get();
      const StTensor* t = f->find(name);
      if (!t) QT_FAIL(ErrorCode::BadFile, index_path + ": lists '" + name + "' in " + s + " but that shard does not hold it");
      by_name_[name] = Ref{f, t};
    }
  } else if (fs::exists(fs::u8path(single_path), ec)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single_path));
    for (const auto& t : files_[0]->tensors()) by_name_[t.name] = Ref{files_[0].get(), &t};
  } else {
    QT_FAIL(ErrorCode::NotFound, folder + ": no model.safetensors or model.safetensors.index.json in the folder");
  }
}

SafetensorsSet::Ref SafetensorsSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? Ref{} : it->second;
}

std::vector<SafetensorsSet::Ref> SafetensorsSet::all() const {
  std::vector<Ref> out;
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) {
      auto r = find(t.name);
      if (r.tensor == &t) out.push_back(r);  // tensors not in the index are ignored, like transformers does
    }
  return out;
}

std::vector<float> st_read_f32(const SafetensorsFile& file, const StTensor& t) {
  DType dt;
  if (!st_compute_dtype(t.dtype, &dt))
    QT_FAIL(ErrorCode::Unsupported, file.path() + ": tensor '" + t.name + "' has dtype " + t.dtype +
                                        "; only BF16, F16 and F32 weights are supported");
  std::vector<float> out(static_cast<size_t>(t.numel));
  convert_to_f32(out.data(), file.data(t), dt, out.size());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json::Value header = json::Value::new_object();
  if (!metadata.empty()) {
    json::Value meta = json::Value::new_object();
    for (const auto& [k, v] : metadata) meta.set(k, json::Value::from_string(v));
    header.set("__metadata__", std::move(meta));
  }
  uint64_t offset = 0;
  std::vector<size_t> sizes;
  for (const auto& t : tensors) {
    size_t esize = st_dtype_size(t.dtype);
    QT_CHECK(esize > 0, ErrorCode::Internal, "write_safetensors: unknown dtype " + t.dtype);
    uint64_t numel = 1;
    json::Value shape = json::Value::new_array();
    for (int64_t d : t.shape) {
      numel *= static_cast<uint64_t>(d);
      shape.push(json::Value::from_int(d));
    }
    size_t nbytes = static_cast<size_t>(numel) * esize;
    json::Value offs = json::Value::new_array();
    offs.push(json::Value::from_int(static_cast<int64_t>(offset))).push(json::Value::from_int(static_cast<int64_t>(offset + nbytes)));
    json::Value info = json::Value::new_object();
    info.set("dtype", json::Value::from_string(t.dtype)).set("shape", std::move(shape)).set("data_offsets", std::move(offs));
    header.set(t.name, std::move(info));
    sizes.push_back(nbytes);
    offset += nbytes;
  }
  std::string h = json::dump(header, -1);
  while ((h.size() + 8) % 8 != 0) h += ' ';
  std::string out;
  out.reserve(8 + h.size() + static_cast<size_t>(offset));
  uint64_t n = h.size();
  for (int i = 0; i < 8; i++) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  for (size_t i = 0; i < tensors.size(); i++) out.append(static_cast<const char*>(tensors[i].data), sizes[i]);
  write_file(path, out);
}

}  // namespace qt
