// engine_tests: the native engine's checks (see harness.h). Run by tests/native/engineCpp.test.ts, which
// registers one vitest test per name printed by --list.
#include <chrono>
#include <cstring>

#include "harness.h"

namespace qtest {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}
}  // namespace qtest

static bool run_one(const qtest::TestCase& t) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    t.fn();
  } catch (const qtest::Failure& f) {
    std::printf("FAIL %s\n  %s\n", t.name, f.what());
    return false;
  } catch (const qt::Error& e) {
    std::printf("FAIL %s\n  unexpected qt::Error %s at %s:%d: %s\n", t.name, qt::error_code_name(e.code()), e.file(),
                e.line(), e.what());
    return false;
  } catch (const std::exception& e) {
    std::printf("FAIL %s\n  unexpected exception: %s\n", t.name, e.what());
    return false;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("ok   %s (%.0f ms)\n", t.name, ms);
  return true;
}

int main(int argc, char** argv) {
  auto& tests = qtest::registry();
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& t : tests) std::printf("%s\n", t.name);
    return 0;
  }
  int failures = 0;
  if (argc == 1) {
    for (const auto& t : tests) failures += run_one(t) ? 0 : 1;
  } else {
    for (int i = 1; i < argc; i++) {
      bool found = false;
      for (const auto& t : tests)
        if (std::strcmp(t.name, argv[i]) == 0) {
          found = true;
          failures += run_one(t) ? 0 : 1;
        }
      if (!found) {
        std::printf("FAIL %s\n  no such test (see --list)\n", argv[i]);
        failures++;
      }
    }
  }
  std::printf("%d failed\n", failures);
  return failures > 255 ? 255 : failures;
}
