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

/** Holds the current device's stream for `ms` milliseconds (a host callback that sleeps): work queued after it waits,
 *  so a benchmark can time how fast the host queues work apart from how fast the GPU runs it. */
void hold_stream(double ms);

/** Frees the op scratch workspace of the current device (it grows again on demand). */
void release_workspace();

/** Run-time switches of the fast paths, process-wide (defaults from the environment, read once):
 *    attn     tc16|tc|simt   QT_CUDA_ATTN     tensor-core flash attention for bf16/fp16 compute on sm_80+, its forward
 *                                              on fp16 operands (tc16, default) or bf16 ones (tc; the backward is bf16
 *                                              either way), or the fp32 SIMT kernels (simt; always used for fp32 compute)
 *    attn_fwd_mt 2|1          QT_CUDA_ATTN_FWD_MT  16-row m-tiles per warp of the tensor-core forward: 2 (default) reads each
 *                                              K/V fragment once for two products, 1 = one (64-row blocks)
 *    attn_split auto|1|0      QT_CUDA_ATTN_SPLIT  the tensor-core backward's dk/dv pass with a block per query head (per-head
 *                                              partials summed over the KV group after it) instead of per KV head; auto: when
 *                                              the per-KV-head grid would leave the GPU under two blocks per SM
 *    attn_ds  1 | 0           QT_CUDA_ATTN_DS  the tensor-core backward (Tq == Tk <= 1024) with dS stored by the dk/dv pass
 *                                              (bf16, the lower triangle's 64 x 64 tiles in workspace) and dq = dS K from it
 *    gemv     7|6|4|3|1|0     QT_CUDA_GEMV     fused NF4 dequant-GEMV for matmuls of <= 4 rows (decode): 4 = x staged
 *                                              in shared memory, 6 = 4 with offset table lookups, 7 = 6 with an fp16
 *                                              pair table for 16-bit compute (default; fp32 compute takes 6), 3 = run 3's
 *                                              warp-per-rows kernel, 1 = run 2's block kernel, 0 = dequantize + GEMM
 *    dequant  auto|vec2|vec|simple  QT_CUDA_DEQUANT  NF4 dequantization: vec2 = coalesced 16-bit stores (run 3), vec =
 *                                              16-byte loads and stores (run 2), auto = whichever of the two the first
 *                                              >= 16M-weight 16-bit copy on the device times faster, simple = a byte per
 *                                              thread; all give the same bits
 *    lora     tf32|cublas|fused  QT_CUDA_LORA  the masked copy + cuBLAS GEMMs on fp32 A/B, in TF32 on tensor cores when
 *                                              the model computes in bf16/fp16 and in exact fp32 when it computes in fp32
 *                                              (tf32, default; with bf16/fp16 compute on sm_80+ and R <= 64 the forward's
 *                                              dropout(x) A^T is one kernel instead: the mask inline, no masked copy,
 *                                              hi/lo-split bf16 tensor-core products, finer than TF32); the same with
 *                                              exact fp32 GEMMs for every compute dtype (cublas, run 1's); or the
 *                                              dropout inside fused SIMT kernels with exact fp32 GEMMs for the rest
 *                                              (fused: ranks <= 64; slower in run 2, selectable)
 *    xcache   1 | 0           QT_CUDA_XCACHE   consecutive matmuls on one input (q/k/v, gate/up) convert it to bf16 once
 *    decode   1 | 0           QT_CUDA_DECODE   single-query attention split over keys (fp32) and RMSNorm (any rows since
 *                                              run 17) with the row in registers (decode_kernels.h), or the general kernels
 *    pdl      2 | 1 | 0       QT_CUDA_PDL      programmatic dependent launch of the decode path's kernels on sm_90+ (each
 *                                              starts while the one before it finishes; launch_pdl in ops.cuh); 2: the
 *                                              NF4 GEMV lets its successor launch as its blocks exit, 1: at once
 *  (Read by the engine at trainer creation: QT_CKPT_BF16=1|0 forces bf16 activation checkpoints on or off;
 *  QT_DEQUANT_REUSE=0 turns off the reuse of a checkpointed layer's converted weights in its backward (on for batches
 *  of <= 4096 rows with memory to spare); QT_CKPT_BF16 unset is automatic: memory.cpp.)
 *  set_path returns false for an unknown name or value. */
bool set_path(const std::string& name, const std::string& value);
/** "attn=tc16 gemv=3 dequant=auto(vec2: ...) lora=tf32 xcache=1 decode=1 ckpt_bf16=auto reuse=auto": what is active now. */
std::string active_paths();

}  // namespace qt::cuda
