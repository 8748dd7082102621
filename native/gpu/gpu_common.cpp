// See gpu_common.h.
#include "gpu_common.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "files.h"
#include "rng.h"

namespace qg {

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

void Report::add(const std::string& group, const std::string& name, const std::string& metric, double value, double tol,
                 bool pass, const std::string& detail) {
  results_.push_back({group, name, metric, value, tol, pass, detail});
  std::printf("%s %-10s %-52s %s=%s (tol %s)%s%s\n", pass ? "PASS" : "FAIL", group.c_str(), name.c_str(), metric.c_str(),
              fmt(value).c_str(), fmt(tol).c_str(), detail.empty() ? "" : "  ", detail.c_str());
  std::fflush(stdout);
}

int Report::failures() const {
  int n = 0;
  for (const auto& r : results_) n += r.pass ? 0 : 1;
  return n;
}

void Report::write_json(const std::string& path, qt::json::Value extra) const {
  using qt::json::Value;
  Value arr = Value::new_array();
  for (const auto& r : results_) {
    Value o = Value::new_object();
    o.set("group", Value::from_string(r.group))
        .set("name", Value::from_string(r.name))
        .set("metric", Value::from_string(r.metric))
        .set("value", std::isfinite(r.value) ? Value::from_double(r.value) : Value::from_string(fmt(r.value)))
        .set("tol", Value::from_double(r.tol))
        .set("pass", Value::from_bool(r.pass))
        .set("detail", Value::from_string(r.detail));
    arr.push(std::move(o));
  }
  extra.set("program", Value::from_string(program_))
      .set("passed", Value::from_int(count() - failures()))
      .set("failed", Value::from_int(failures()))
      .set("results", std::move(arr));
  qt::write_file(path, qt::json::dump(extra) + "\n");
}

void Report::print_summary() const {
  std::printf("%s: %d passed, %d failed\n", program_.c_str(), count() - failures(), failures());
  for (const auto& r : results_)
    if (!r.pass) std::printf("  FAILED %s / %s: %s=%s (tol %s) %s\n", r.group.c_str(), r.name.c_str(), r.metric.c_str(),
                             fmt(r.value).c_str(), fmt(r.tol).c_str(), r.detail.c_str());
  std::fflush(stdout);
}

double rel_l2(const std::vector<float>& ref, const std::vector<float>& x) {
  if (ref.size() != x.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    if (!std::isfinite(ref[i]) || !std::isfinite(x[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(ref[i]) - x[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (den == 0) return num == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= m)) m = d;  // NaN propagates
  }
  return m;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool all_finite(const std::vector<float>& a) {
  for (float v : a)
    if (!std::isfinite(v)) return false;
  return true;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); i++) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (aa == 0 || bb == 0) return aa == bb ? 1 : 0;
  return ab / std::sqrt(aa * bb);
}

std::vector<float> rand_vec(size_t n, uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * qt::rng_uniform(seed, i);
  return v;
}

}  // namespace qg
