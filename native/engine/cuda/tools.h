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

/** Run-time switches of the fast paths, process-wide (defaults from the environment, read once):
 *    attn     tc | simt       QT_CUDA_ATTN     tensor-core flash attention for bf16/fp16 compute on sm_80+ (tc), or
 *                                              the fp32 SIMT kernels (simt; always used for fp32 compute)
 *    gemv     1 | 0           QT_CUDA_GEMV     fused NF4 dequant-GEMV for matmuls of <= 4 rows (decode)
 *    dequant  vec | simple    QT_CUDA_DEQUANT  16-byte vectorised NF4 dequantization, or one byte per thread
 *    lora     fused | cublas  QT_CUDA_LORA     LoRA dropout inside fused kernels (ranks <= 64), or run 1's masked
 *                                              copy + cuBLAS fp32 GEMMs
 *    xcache   1 | 0           QT_CUDA_XCACHE   consecutive matmuls on one input (q/k/v, gate/up) convert it to bf16 once
 *  (QT_CKPT_BF16=1|0, read by the engine at trainer creation, forces bf16 activation checkpoints on or off.)
 *  set_path returns false for an unknown name or value. */
bool set_path(const std::string& name, const std::string& value);
/** "attn=tc gemv=1 dequant=vec lora=fused xcache=1 ckpt_bf16=auto": what is active now. */
std::string active_paths();

}  // namespace qt::cuda
