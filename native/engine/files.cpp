// File helpers (see files.h). std::filesystem does the portable parts; the memory map is per platform.
#include "files.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "engine.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace fs = std::filesystem;

namespace qt {

#ifdef _WIN32
MappedFile::MappedFile(const std::string& path) : path_(path) {
  std::error_code ec;
  if (!fs::exists(fs::u8path(path), ec)) QT_FAIL(ErrorCode::NotFound, path + ": file not found");
  std::wstring wpath = fs::u8path(path).wstring();
  HANDLE f = CreateFileW(wpath.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (f == INVALID_HANDLE_VALUE) QT_FAIL(ErrorCode::Io, path + ": cannot open the file");
  LARGE_INTEGER sz;
  if (!GetFileSizeEx(f, &sz)) {
    CloseHandle(f);
    QT_FAIL(ErrorCode::Io, path + ": cannot read the file size");
  }
  size_ = static_cast<size_t>(sz.QuadPart);
  if (size_ == 0) {
    CloseHandle(f);
    QT_FAIL(ErrorCode::BadFile, path + ": the file is empty");
  }
  HANDLE m = CreateFileMappingW(f, nullptr, PAGE_READONLY, 0, 0, nullptr);
  if (!m) {
    CloseHandle(f);
    QT_FAIL(ErrorCode::Io, path + ": cannot map the file");
  }
  void* p = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0);
  if (!p) {
    CloseHandle(m);
    CloseHandle(f);
    QT_FAIL(ErrorCode::OutOfMemory, path + ": cannot map the file into memory");
  }
  file_ = f;
  mapping_ = m;
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) UnmapViewOfFile(data_);
  if (mapping_) CloseHandle(static_cast<HANDLE>(mapping_));
  if (file_) CloseHandle(static_cast<HANDLE>(file_));
}
#else
MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) QT_FAIL(ErrorCode::NotFound, path + ": file not found");
    QT_FAIL(ErrorCode::Io, path + ": cannot open the file (" + std::strerror(errno) + ")");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    QT_FAIL(ErrorCode::Io, path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    QT_FAIL(ErrorCode::BadFile, path + ": the file is empty");
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) QT_FAIL(ErrorCode::OutOfMemory, path + ": cannot map the file into memory");
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}
#endif

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(fs::u8path(path), ec)) QT_FAIL(ErrorCode::NotFound, path + ": file not found");
  std::ifstream in(fs::u8path(path), std::ios::binary);
  if (!in) QT_FAIL(ErrorCode::Io, path + ": cannot open the file");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) QT_FAIL(ErrorCode::Io, path + ": read failed");
  return s;
}

void write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream out(fs::u8path(path), std::ios::binary | std::ios::trunc);
  if (!out) QT_FAIL(ErrorCode::Io, path + ": cannot create the file (check the folder exists and is writable)");
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.flush();
  if (!out) QT_FAIL(ErrorCode::Io, path + ": write failed (disk full?)");
}

// ---- AtomicFolder -------------------------------------------------------------------------------------

namespace {
std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return std::to_string(t % 1000000007ull) + "-" + std::to_string(counter.fetch_add(1));
}
}  // namespace

AtomicFolder::AtomicFolder(const std::string& dest, const std::vector<std::string>& allowed_names) : dest_(dest) {
  std::error_code ec;
  fs::path d = fs::u8path(dest);
  if (d.filename().empty()) d = d.parent_path();  // "a/b/" -> "a/b"
  dest_ = d.u8string();
  if (fs::exists(d, ec)) {
    if (!fs::is_directory(d, ec)) QT_FAIL(ErrorCode::InvalidArgument, dest_ + " exists and is not a folder");
    for (const auto& entry : fs::directory_iterator(d, ec)) {
      std::string name = entry.path().filename().u8string();
      bool ok = false;
      for (const auto& a : allowed_names) ok = ok || a == name;
      if (!ok)
        QT_FAIL(ErrorCode::InvalidArgument, dest_ + " already holds other files (" + name +
                                                "); choose an empty or new folder");
    }
  }
  fs::path parent = d.parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) QT_FAIL(ErrorCode::Io, parent.u8string() + ": cannot create the folder (" + ec.message() + ")");
  }
  temp_ = dest_ + ".tmp-" + unique_suffix();
  fs::create_directory(fs::u8path(temp_), ec);
  if (ec) QT_FAIL(ErrorCode::Io, temp_ + ": cannot create a temporary folder (" + ec.message() + ")");
}

AtomicFolder::~AtomicFolder() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(fs::u8path(temp_), ec);
  }
}

std::string AtomicFolder::file(const std::string& name) const { return temp_ + "/" + name; }

void AtomicFolder::commit() {
  std::error_code ec;
  fs::path d = fs::u8path(dest_);
  fs::path old;
  if (fs::exists(d, ec)) {  // move the previous version aside first; a crash here keeps it as *.old-*
    old = fs::u8path(dest_ + ".old-" + unique_suffix());
    fs::rename(d, old, ec);
    if (ec) QT_FAIL(ErrorCode::Io, dest_ + ": cannot replace the existing folder (" + ec.message() + ")");
  }
  fs::rename(fs::u8path(temp_), d, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, d, ec2);  // put the old one back
    QT_FAIL(ErrorCode::Io, dest_ + ": cannot move the new folder into place (" + ec.message() + ")");
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace qt
