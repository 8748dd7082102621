// Backend conformance: the CUDA backend (when this build has one) against the CPU reference, op by op on
// fresh random inputs; and the runner itself, shown to catch a wrong op.
#include <cmath>

#include "backend_ops.h"
#include "cpu/ops.h"
#include "harness.h"

using namespace qtest;

namespace {

// A deliberately wrong swiglu (silu(g) * up * 1.001): the conformance run must flag it and nothing else.
void wrong_swiglu(float* out, const float* gate, const float* up, size_t n) {
  qt::cpu::swiglu_forward(out, gate, up, n);
  for (size_t i = 0; i < n; i++) out[i] *= 1.001f;
}

void cuda_matches_cpu() {
  const qt::Backend* cuda = qt::cuda_backend();
  CHECK(cuda != nullptr);
  // fp32 math on both sides; CUDA may reorder sums (and use TF32/bf16 GEMMs: loosen here if it does, and say so)
  OpsReport r = compare_backends(qt::cpu_backend(), *cuda, 2e-3, 2e-4);
  std::string all;
  for (const auto& f : r.failures) all += "\n    " + f;
  CHECK_MSG(r.failures.empty(), r.failures.size() << " op(s) differ:" << all);
  CHECK(r.checked > 20);
}

// Registered only when a CUDA backend is compiled in (a CPU-only build has nothing to compare).
const bool cuda_registered = [] {
  if (qt::cuda_backend()) registry().push_back({"backend_ops_cuda_matches_cpu", cuda_matches_cpu});
  return true;
}();

}  // namespace

TEST(backend_ops_runner_catches_a_wrong_op) {
  const qt::Backend& cpu = qt::cpu_backend();
  OpsReport same = compare_backends(cpu, cpu, 0, 0);  // the CPU is deterministic: bit-identical to itself
  CHECK_MSG(same.failures.empty(), same.failures[0]);
  CHECK(same.checked > 20);
  qt::Backend broken = cpu;
  broken.swiglu_forward = wrong_swiglu;
  OpsReport r = compare_backends(cpu, broken, 1e-4, 1e-6);
  CHECK_EQ(r.failures.size(), 1u);
  CHECK_MSG(r.failures[0].rfind("swiglu output 0", 0) == 0, r.failures[0]);
}
