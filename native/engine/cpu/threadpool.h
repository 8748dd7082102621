// parallel_for over [0, n) for the CPU backend: a process-wide pool of std::threads (one per hardware
// thread), started on first use. Work is split into chunks of at least `grain` indices; every index is
// processed by exactly one thread with the same code, so results never depend on the thread count.
// If another thread is already using the pool (two trainers at once), the caller runs its loop inline
// rather than waiting: no deadlock, no contention, same results.
#pragma once

#include <cstdint>
#include <functional>

namespace qt::cpu {

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);
int num_threads();

}  // namespace qt::cpu
