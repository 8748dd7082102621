// CUDA backend extras for the GPU check and benchmark programs (native/gpu): the engine's own device-memory
// counters, a per-op time breakdown (CUDA events around every backend op), stream synchronisation. Plain
// C++ (no CUDA headers). Only in builds with the CUDA backend.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qt::cuda {

struct MemoryStats {
  uint64_t current = 0;    // bytes the engine holds on the device now (cudaMalloc'd, incl. workspaces)
  uint64_t peak = 0;       // high-water mark since the last reset_peak
  uint64_t workspace = 0;  // of which the op scratch workspace + cuBLAS workspace
};
MemoryStats memory_stats(int device);
void reset_peak(int device);

/** Starts recording a pair of events around every op on the current device. */
void profile_begin();
/** Stops recording, synchronises and returns (op or section name, total ms, calls), slowest first. */
struct ProfileEntry {
  std::string name;
  double ms = 0;
  int calls = 0;
};
std::vector<ProfileEntry> profile_end();

/** Waits for everything queued on the current device's stream. */
void synchronize();

/** Frees the op scratch workspace of the current device (it grows again on demand). */
void release_workspace();

}  // namespace qt::cuda
