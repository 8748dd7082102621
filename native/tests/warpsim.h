// warpsim: runs the portable CUDA kernel bodies (engine/cuda/kernel_ctx.h) on the CPU, so the tensor-core
// attention, the NF4 GEMV and the vectorised dequantization are tested here, where there is no GPU, against the
// CPU ops. One thread block at a time; its threads are cooperative fibers (ucontext) that switch only at
// collectives, so a run is deterministic:
//   sync()          __syncthreads: a thread waits until every thread of the block waits there;
//   shfl_xor()      __shfl_xor_sync over the full warp (float or double);
//   mma_bf16()      mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (mma_f16: .f16.f16): every lane deposits its A/B fragment
//                   registers, then computes its C fragment from the whole warp's, decoding the registers with
//                   the PTX ISA's fragment layouts (independently of the kernels' own index arithmetic).
//   ldsm_x4(_t)     ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: every lane deposits its row address, then reads
//                   its four registers from the warp's rows (the PTX ISA's layout);
//   cp_async16()    cp.async of 16 bytes (or zeros): copied at once, so commit and wait are no-ops here. A kernel that
//                   reads a buffer before waiting for its copy is not caught by the simulator; gpu_check catches it.
// A warp whose lanes reach different collectives, or a barrier some threads never reach, is a deadlock here (and
// a hang or undefined behaviour on the GPU): launch() throws with the block and the threads' states.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace warpsim {

struct Dim3 {
  int x = 1, y = 1, z = 1;
};

struct Stats {
  long long blocks = 0, barriers = 0, warp_collectives = 0, mmas = 0;
};

class Block;

/** What a kernel body sees (the members DevCtx has on the GPU). */
class Ctx {
 public:
  int tid() const { return tid_; }
  int nthreads() const;
  int bx() const;
  int by() const;
  int bz() const;
  int nbx() const;
  char* smem() const;
  void sync();
  float shfl_xor(float v, int mask);
  double shfl_xor(double v, int mask);
  void mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]);
  void mma_f16(float d[4], const uint32_t a[4], const uint32_t b[2]);
  void ldsm_x4(uint32_t r[4], const uint16_t* row);
  void ldsm_x4_t(uint32_t r[4], const uint16_t* row);
  void cp_async16(void* dst, const void* src, bool valid);
  void cp_async_commit() {}
  void cp_async_wait_all() {}

 private:
  void mma(float d[4], const uint32_t a[4], const uint32_t b[2], bool f16);
  void ldsm(uint32_t r[4], const uint16_t* row, bool trans);
  friend class Block;
  Block* blk_ = nullptr;
  int tid_ = 0;
};

/** Runs body for every thread of every block of `grid` (blockDim.x = threads, dynamic shared memory smem_bytes,
 *  filled with 0xAB bytes before each block so reads of unwritten shared memory show up as garbage). */
void launch(Dim3 grid, int threads, size_t smem_bytes, const std::function<void(Ctx&)>& body, Stats* stats = nullptr);

}  // namespace warpsim
