// Helpers shared by the GPU programs (gpu_check, gpu_hf, gpu_bench): a result report that prints one line per
// comparison as it runs and writes everything as JSON, error metrics, random data, device buffers through the
// CUDA backend table, and a wall clock.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "backend.h"
#include "engine.h"
#include "json.h"

namespace qg {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Result {
  std::string group, name, metric;
  double value = 0, tol = 0;
  bool pass = false;
  std::string detail;
};

class Report {
 public:
  explicit Report(std::string program) : program_(std::move(program)) {}
  /** Records and prints one comparison: PASS when `pass`, with its metric, value and tolerance. */
  void add(const std::string& group, const std::string& name, const std::string& metric, double value, double tol, bool pass,
           const std::string& detail = "");
  /** A check that is pass/fail only (no number). */
  void check(const std::string& group, const std::string& name, bool pass, const std::string& detail = "") {
    add(group, name, "ok", pass ? 1 : 0, 1, pass, detail);
  }
  /** Runs fn; a thrown exception becomes a failed result for (group, name) and the program goes on. */
  template <class F>
  void guard(const std::string& group, const std::string& name, F&& fn);
  int failures() const;
  int count() const { return static_cast<int>(results_.size()); }
  void write_json(const std::string& path, qt::json::Value extra = qt::json::Value::new_object()) const;
  void print_summary() const;

 private:
  std::string program_;
  std::vector<Result> results_;
};

template <class F>
void Report::guard(const std::string& group, const std::string& name, F&& fn) {
  try {
    fn();
  } catch (const qt::Error& e) {
    add(group, name, "exception", 0, 0, false, std::string(qt::error_code_name(e.code())) + ": " + e.what());
  } catch (const std::exception& e) {
    add(group, name, "exception", 0, 0, false, e.what());
  }
  std::fflush(stdout);
}

/** ||a - b|| / ||a|| (a is the reference); +inf when anything is NaN/inf or sizes differ. */
double rel_l2(const std::vector<float>& ref, const std::vector<float>& x);
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);
bool bit_equal(const std::vector<float>& a, const std::vector<float>& b);
bool all_finite(const std::vector<float>& a);
/** cos(a, b) in double. */
double cosine(const std::vector<float>& a, const std::vector<float>& b);

/** n values uniform in [lo, hi), from stream seed (rng.h). */
std::vector<float> rand_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f);

/** Device memory through a backend table (freed on destruction). */
class DevBuf {
 public:
  DevBuf(const qt::Backend& be, size_t bytes) : be_(&be), bytes_(bytes) { p_ = be.alloc(bytes); }
  template <class T>
  DevBuf(const qt::Backend& be, const std::vector<T>& host) : DevBuf(be, host.size() * sizeof(T)) {
    be.upload(p_, host.data(), bytes_);
  }
  ~DevBuf() {
    if (p_) be_->free(p_);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : be_(o.be_), p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  void* ptr() const { return p_; }
  float* f() const { return static_cast<float*>(p_); }
  template <class T = float>
  std::vector<T> get() const {
    std::vector<T> out(bytes_ / sizeof(T));
    be_->download(out.data(), p_, bytes_);
    return out;
  }
  template <class T>
  void set(const std::vector<T>& host) {
    be_->upload(p_, host.data(), host.size() * sizeof(T));
  }
  size_t bytes() const { return bytes_; }

 private:
  const qt::Backend* be_;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

/** Formats a double compactly ("1.23e-05"). */
std::string fmt(double v);

}  // namespace qg
