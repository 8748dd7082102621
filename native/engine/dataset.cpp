// Reader of the training-set file (format and semantics in FORMATS.md). The whole file is checked before
// use: magic, version, sizes (truncated or trailing bytes), offsets (monotonic, no empty sample, covering
// all tokens), ids within the header's vocabulary, mask values 0/1 with the first token of a sample never
// a target. Any violation is BAD_FILE naming the file and what is wrong.
#include "dataset.h"

#include <algorithm>
#include <cstring>

#include "files.h"

namespace qt {

namespace {

uint32_t rd32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return static_cast<uint64_t>(rd32(p)) | static_cast<uint64_t>(rd32(p + 4)) << 32; }

}  // namespace

Dataset read_dataset(const std::string& path) {
  MappedFile f(path);
  const uint8_t* p = f.data();
  const uint64_t size = f.size();
  auto bad = [&](const std::string& why) { QT_FAIL(ErrorCode::BadFile, path + ": " + why); };
  if (size < 64) bad("truncated training-set file (" + std::to_string(size) + " bytes, the header alone is 64)");
  if (std::memcmp(p, "QTDSET1\0", 8) != 0) bad("not a training-set file (bad magic)");
  const uint32_t version = rd32(p + 8);
  if (version != 1)
    QT_FAIL(ErrorCode::Unsupported, path + ": training-set version " + std::to_string(version) + " (this engine reads version 1)");
  Dataset d;
  d.path = path;
  const uint64_t N = rd32(p + 12);
  const uint64_t T = rd64(p + 16);
  d.vocab_size = rd32(p + 24);
  if (d.vocab_size == 0) bad("vocab_size is 0");
  if (N > (1u << 30) || T > (uint64_t{1} << 40)) bad("implausible sample or token count");
  const uint64_t expected = 64 + 8 * (N + 1) + 5 * T;
  if (size < expected)
    bad("truncated (expected " + std::to_string(expected) + " bytes for " + std::to_string(N) + " samples and " +
        std::to_string(T) + " tokens, the file has " + std::to_string(size) + ")");
  if (size > expected) bad("has " + std::to_string(size - expected) + " unexpected trailing bytes");
  d.num_samples = static_cast<int>(N);
  d.num_tokens = T;

  d.offsets.resize(N + 1);
  for (uint64_t i = 0; i <= N; i++) d.offsets[i] = rd64(p + 64 + 8 * i);
  if (d.offsets[0] != 0) bad("offsets[0] must be 0");
  if (d.offsets[N] != T) bad("offsets[N] (" + std::to_string(d.offsets[N]) + ") must equal num_tokens (" + std::to_string(T) + ")");
  for (uint64_t i = 0; i < N; i++)
    if (d.offsets[i + 1] <= d.offsets[i]) bad("sample " + std::to_string(i) + " is empty or its offsets decrease");

  const uint8_t* ids = p + 64 + 8 * (N + 1);
  const uint8_t* mask = ids + 4 * T;
  d.ids.resize(T);
  d.mask.assign(mask, mask + T);
  for (uint64_t t = 0; t < T; t++) {
    const int32_t id = static_cast<int32_t>(rd32(ids + 4 * t));
    if (id < 0 || static_cast<uint32_t>(id) >= d.vocab_size)
      bad("token " + std::to_string(t) + " has id " + std::to_string(id) + ", outside the file's vocabulary of " +
          std::to_string(d.vocab_size));
    d.ids[t] = id;
    if (d.mask[t] > 1) bad("loss mask of token " + std::to_string(t) + " is " + std::to_string(d.mask[t]) + " (must be 0 or 1)");
  }
  for (uint64_t i = 0; i < N; i++)
    if (d.mask[d.offsets[i]] != 0) bad("the first token of sample " + std::to_string(i) + " is marked as a target");

  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (uint64_t i = 0; i < size; i++) h = (h ^ p[i]) * 1099511628211ull;
  d.fingerprint = h;
  return d;
}

DatasetInfo inspect_dataset(const std::string& path) {
  Dataset d = read_dataset(path);
  DatasetInfo info;
  info.num_samples = d.num_samples;
  info.num_tokens = d.num_tokens;
  for (uint8_t m : d.mask) info.num_target_tokens += m;
  for (int i = 0; i < d.num_samples; i++) info.max_length = std::max(info.max_length, d.length(i));
  return info;
}

}  // namespace qt
