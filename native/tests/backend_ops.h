// Backend conformance (ggml's test-backend-ops): runs every op of the backend table on two backends with
// the same fresh random inputs (uploaded to each) and compares the outputs. The CUDA backend is checked
// against the CPU reference with this; test_backend_ops.cpp registers that test when a CUDA table exists.
#pragma once

#include <string>
#include <vector>

#include "backend.h"

namespace qtest {

struct OpsReport {
  int checked = 0;                    // op cases compared
  std::vector<std::string> failures;  // "op (case): max |diff| ... at i"
};

/** Every op, several shapes each (odd sizes, GQA, padding, cached queries, every weight dtype, dropout).
 *  Outputs are compared with |test - ref| <= atol + rtol * |ref|. Accumulating outputs start from random
 *  values, so "+=" versus "=" semantics are checked too. */
OpsReport compare_backends(const qt::Backend& ref, const qt::Backend& test, double rtol, double atol);

}  // namespace qtest
