// A tiny self-written test harness (no framework): TEST(name) registers a test; CHECK* throw on failure.
//   engine_tests --list      prints every test name, one per line
//   engine_tests <name>...   runs the named tests
//   engine_tests             runs all
// The exit code is the number of failed tests.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"

namespace qtest {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TestCase {
  const char* name;
  void (*fn)();
};

std::vector<TestCase>& registry();

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

[[noreturn]] inline void fail(const char* file, int line, const std::string& msg) {
  std::ostringstream s;
  s << file << ":" << line << ": " << msg;
  throw Failure(s.str());
}

}  // namespace qtest

#define TEST(name)                                                  \
  static void test_##name();                                        \
  static qtest::Registrar registrar_##name(#name, test_##name);     \
  static void test_##name()

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) qtest::fail(__FILE__, __LINE__, "CHECK failed: " #cond); \
  } while (0)

#define CHECK_MSG(cond, msg)                                                                        \
  do {                                                                                              \
    if (!(cond)) {                                                                                  \
      std::ostringstream s_;                                                                        \
      s_ << "CHECK failed: " #cond ": " << msg;                                                     \
      qtest::fail(__FILE__, __LINE__, s_.str());                                                    \
    }                                                                                               \
  } while (0)

#define CHECK_EQ(a, b)                                                                              \
  do {                                                                                              \
    auto va_ = (a);                                                                                 \
    auto vb_ = (b);                                                                                 \
    if (!(va_ == vb_)) {                                                                            \
      std::ostringstream s_;                                                                        \
      s_ << "CHECK_EQ failed: " #a " == " #b " (" << va_ << " vs " << vb_ << ")";                   \
      qtest::fail(__FILE__, __LINE__, s_.str());                                                    \
    }                                                                                               \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                       \
  do {                                                                                              \
    double va_ = (a), vb_ = (b), t_ = (tol);                                                        \
    if (!(std::fabs(va_ - vb_) <= t_)) {                                                            \
      std::ostringstream s_;                                                                        \
      s_.precision(9);                                                                              \
      s_ << "CHECK_NEAR failed: " #a " ~ " #b " (" << va_ << " vs " << vb_ << ", tol " << t_ << ")"; \
      qtest::fail(__FILE__, __LINE__, s_.str());                                                    \
    }                                                                                               \
  } while (0)

// Expects expr to throw qt::Error with the given ErrorCode.
#define CHECK_THROWS_CODE(expr, code_)                                                               \
  do {                                                                                              \
    bool thrown_ = false;                                                                           \
    try {                                                                                           \
      expr;                                                                                         \
    } catch (const qt::Error& e_) {                                                                 \
      thrown_ = true;                                                                               \
      if (e_.code() != (code_)) {                                                                   \
        std::ostringstream s_;                                                                      \
        s_ << "expected " << qt::error_code_name(code_) << " but got " << qt::error_code_name(e_.code()) \
           << ": " << e_.what();                                                                    \
        qtest::fail(__FILE__, __LINE__, s_.str());                                                  \
      }                                                                                             \
    }                                                                                               \
    if (!thrown_) qtest::fail(__FILE__, __LINE__, "expected " #expr " to throw " #code_);         \
  } while (0)
