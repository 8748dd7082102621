// File helpers: read-only memory maps (POSIX mmap / Win32 file mappings), whole-file reads and writes, and
// atomic folder replacement (write everything into a temporary sibling folder, then rename it into place,
// so a failed write never leaves a half-written checkpoint or adapter where a good one was).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qt {

/** A read-only mapping of a whole file. Throws NotFound / Io / BadFile (empty file). */
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
#ifdef _WIN32
  void* file_ = nullptr;
  void* mapping_ = nullptr;
#endif
};

std::string read_text_file(const std::string& path);  // NotFound / Io
void write_file(const std::string& path, const void* data, size_t size);  // Io (disk full, permissions...)
inline void write_file(const std::string& path, const std::string& text) { write_file(path, text.data(), text.size()); }

/** Writes a folder atomically. Usage: AtomicFolder f(dest, allowed); write files into f.temp(); f.commit().
 *  The constructor refuses (InvalidArgument) when dest exists and holds anything whose name is not in
 *  `allowed`, so a user folder is never replaced by mistake. The destructor removes an uncommitted temp. */
class AtomicFolder {
 public:
  AtomicFolder(const std::string& dest, const std::vector<std::string>& allowed_names);
  ~AtomicFolder();
  AtomicFolder(const AtomicFolder&) = delete;
  AtomicFolder& operator=(const AtomicFolder&) = delete;
  const std::string& temp() const { return temp_; }
  std::string file(const std::string& name) const;  // temp() + "/" + name
  void commit();

 private:
  std::string dest_, temp_;
  bool committed_ = false;
};

}  // namespace qt
