// See warpsim.h.
#include "warpsim.h"

#include <ucontext.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace warpsim {

namespace {

constexpr size_t kStack = 256 * 1024;

enum class State { Run, BlockBar, WarpBar, Done };

struct Fiber {
  ucontext_t uc{};
  std::unique_ptr<char[]> stack;
  State state = State::Run;
};

struct Slot {  // one lane's deposit for a warp collective
  uint32_t a[4];
  uint32_t b[2];
  float f;
  double d;
  const uint16_t* p;
};

float bf16_lo(uint32_t r) {
  const uint32_t bits = r << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float bf16_hi(uint32_t r) {
  const uint32_t bits = r & 0xffff0000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float half_of(uint32_t r, int hi) { return hi ? bf16_hi(r) : bf16_lo(r); }

// IEEE binary16 bits -> float (exact; subnormals, inf, NaN)
float f16_value(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0x1f) {
    bits = sign | 0x7f800000u | (m << 13);
  } else if (e != 0) {
    bits = sign | ((e + 112u) << 23) | (m << 13);
  } else if (m == 0) {
    bits = sign;
  } else {  // subnormal: m * 2^-24
    float f = static_cast<float>(m) * 5.9604644775390625e-8f;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float f16_of(uint32_t r, int hi) { return f16_value(static_cast<uint16_t>(hi ? r >> 16 : r & 0xffffu)); }

}  // namespace

class Block {
 public:
  Dim3 grid, idx;
  int n = 0;
  std::vector<char> shared;
  std::vector<Fiber> fibers;
  std::vector<Ctx> ctx;
  std::vector<Slot> slots;
  ucontext_t sched{};
  int current = -1;
  const std::function<void(Ctx&)>* body = nullptr;
  std::exception_ptr error;
  Stats* stats = nullptr;

  void yield(State s) {
    Fiber& f = fibers[static_cast<size_t>(current)];
    f.state = s;
    swapcontext(&f.uc, &sched);
  }

  static void entry(int lo, int hi) {
    const uintptr_t p = (static_cast<uintptr_t>(static_cast<uint32_t>(hi)) << 32) | static_cast<uint32_t>(lo);
    Ctx* c = reinterpret_cast<Ctx*>(p);
    Block* b = c->blk_;
    try {
      (*b->body)(*c);
    } catch (...) {
      if (!b->error) b->error = std::current_exception();
    }
    b->fibers[static_cast<size_t>(c->tid_)].state = State::Done;
    // returning resumes uc_link (the scheduler)
  }

  std::string states() const {
    std::ostringstream s;
    for (int w = 0; w * 32 < n; w++) {
      s << " warp " << w << ":";
      for (int l = 0; l < 32 && w * 32 + l < n; l++) {
        const State st = fibers[static_cast<size_t>(w * 32 + l)].state;
        s << (st == State::Run ? 'R' : st == State::BlockBar ? 'B' : st == State::WarpBar ? 'W' : 'D');
      }
    }
    return s.str();
  }

  void run() {
    for (int i = 0; i < n; i++) {
      Fiber& f = fibers[static_cast<size_t>(i)];
      ctx[static_cast<size_t>(i)].blk_ = this;
      ctx[static_cast<size_t>(i)].tid_ = i;
      f.state = State::Run;
      getcontext(&f.uc);
      f.uc.uc_stack.ss_sp = f.stack.get();
      f.uc.uc_stack.ss_size = kStack;
      f.uc.uc_link = &sched;
      const uintptr_t p = reinterpret_cast<uintptr_t>(&ctx[static_cast<size_t>(i)]);
      makecontext(&f.uc, reinterpret_cast<void (*)()>(&Block::entry), 2, static_cast<int>(static_cast<uint32_t>(p)),
                  static_cast<int>(static_cast<uint32_t>(p >> 32)));
    }
    for (;;) {
      for (int i = 0; i < n; i++) {
        if (fibers[static_cast<size_t>(i)].state != State::Run) continue;
        current = i;
        swapcontext(&sched, &fibers[static_cast<size_t>(i)].uc);
        if (error) std::rethrow_exception(error);
      }
      int done = 0, block_bar = 0, warp_bar = 0;
      for (const Fiber& f : fibers) {
        done += f.state == State::Done;
        block_bar += f.state == State::BlockBar;
        warp_bar += f.state == State::WarpBar;
      }
      if (done == n) return;
      bool released = false;
      for (int w = 0; w * 32 < n; w++) {
        const int l0 = w * 32, l1 = std::min(n, l0 + 32);
        int waiting = 0;
        for (int i = l0; i < l1; i++) waiting += fibers[static_cast<size_t>(i)].state == State::WarpBar;
        if (waiting == l1 - l0) {
          for (int i = l0; i < l1; i++) fibers[static_cast<size_t>(i)].state = State::Run;
          released = true;
          if (stats) stats->warp_collectives++;
        } else if (waiting > 0) {
          throw std::runtime_error("warpsim: warp " + std::to_string(w) + " of block (" + std::to_string(idx.x) + "," +
                                   std::to_string(idx.y) + "," + std::to_string(idx.z) +
                                   ") diverged at a warp collective (lanes R/B/W/D):" + states());
        }
      }
      if (released) continue;
      if (block_bar > 0 && block_bar + done == n) {
        if (done > 0)
          throw std::runtime_error("warpsim: __syncthreads after some threads of the block exited:" + states());
        for (Fiber& f : fibers) f.state = State::Run;
        if (stats) stats->barriers++;
        continue;
      }
      throw std::runtime_error("warpsim: deadlock in block (" + std::to_string(idx.x) + "," + std::to_string(idx.y) + "," +
                               std::to_string(idx.z) + "):" + states());
    }
  }
};

int Ctx::nthreads() const { return blk_->n; }
int Ctx::bx() const { return blk_->idx.x; }
int Ctx::by() const { return blk_->idx.y; }
int Ctx::bz() const { return blk_->idx.z; }
int Ctx::nbx() const { return blk_->grid.x; }
char* Ctx::smem() const { return blk_->shared.data(); }

void Ctx::sync() { blk_->yield(State::BlockBar); }

float Ctx::shfl_xor(float v, int mask) {
  Block& b = *blk_;
  b.slots[static_cast<size_t>(tid_)].f = v;
  b.yield(State::WarpBar);  // every lane has deposited
  const int src = (tid_ & ~31) | ((tid_ & 31) ^ (mask & 31));
  const float r = b.slots[static_cast<size_t>(src)].f;
  b.yield(State::WarpBar);  // every lane has read
  return r;
}

double Ctx::shfl_xor(double v, int mask) {
  Block& b = *blk_;
  b.slots[static_cast<size_t>(tid_)].d = v;
  b.yield(State::WarpBar);
  const int src = (tid_ & ~31) | ((tid_ & 31) ^ (mask & 31));
  const double r = b.slots[static_cast<size_t>(src)].d;
  b.yield(State::WarpBar);
  return r;
}

void Ctx::mma_bf16(float d[4], const uint32_t a[4], const uint32_t bb[2]) { mma(d, a, bb, false); }
void Ctx::mma_f16(float d[4], const uint32_t a[4], const uint32_t bb[2]) { mma(d, a, bb, true); }

void Ctx::mma(float d[4], const uint32_t a[4], const uint32_t bb[2], bool f16) {
  Block& b = *blk_;
  Slot& mine = b.slots[static_cast<size_t>(tid_)];
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, bb, sizeof mine.b);
  b.yield(State::WarpBar);
  if (b.stats && (tid_ & 31) == 0) b.stats->mmas++;
  const int base = tid_ & ~31, lane = tid_ & 31, g = lane >> 2, t = lane & 3;
  // PTX ISA, mma.m16n8k16 with .bf16: A (16 x 16, row): lane 4 g' + t' holds a0 = A[g'][2t', 2t'+1],
  // a1 = A[g'+8][2t'..], a2 = A[g'][2t'+8..], a3 = A[g'+8][2t'+8..] (lower column in the low half);
  // B (16 x 8, col): b0 = B[2t', 2t'+1][g'], b1 = B[2t'+8, 2t'+9][g']; C/D: c0, c1 = D[g'][2t', 2t'+1], c2, c3 = D[g'+8][..].
  auto A = [&](int row, int k) {
    const int lane_ = 4 * (row % 8) + (k % 8) / 2;
    const int reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    const uint32_t r = b.slots[static_cast<size_t>(base + lane_)].a[reg];
    return f16 ? f16_of(r, k % 2) : half_of(r, k % 2);
  };
  auto B = [&](int k, int col) {
    const int lane_ = 4 * col + (k % 8) / 2;
    const uint32_t r = b.slots[static_cast<size_t>(base + lane_)].b[k >= 8 ? 1 : 0];
    return f16 ? f16_of(r, k % 2) : half_of(r, k % 2);
  };
  float out[4];
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
    double s = 0;
    for (int k = 0; k < 16; k++) s += static_cast<double>(A(row, k)) * B(k, col);
    out[e] = static_cast<float>(static_cast<double>(d[e]) + s);
  }
  b.yield(State::WarpBar);  // every lane has read the deposits
  for (int e = 0; e < 4; e++) d[e] = out[e];
}

void Ctx::ldsm_x4(uint32_t r[4], const uint16_t* row) { ldsm(r, row, false); }
void Ctx::ldsm_x4_t(uint32_t r[4], const uint16_t* row) { ldsm(r, row, true); }

void Ctx::ldsm(uint32_t r[4], const uint16_t* row, bool trans) {
  Block& b = *blk_;
  const char* lo = b.shared.data();
  const char* p = reinterpret_cast<const char*>(row);
  if (p < lo || p + 16 > lo + b.shared.size() || (p - lo) % 16 != 0)
    throw std::runtime_error("warpsim: ldmatrix row address outside shared memory or not 16-byte aligned");
  b.slots[static_cast<size_t>(tid_)].p = row;
  b.yield(State::WarpBar);  // every lane has deposited its row address
  const int base = tid_ & ~31, lane = tid_ & 31, g = lane >> 2, t = lane & 3;
  // matrix i's row k comes from lane 8 i + k; lane 4 g + t receives (M[g][2t], M[g][2t+1]), or with .trans
  // (M[2t][g], M[2t+1][g]) (PTX ISA, ldmatrix)
  uint32_t out[4];
  for (int i = 0; i < 4; i++) {
    auto M = [&](int row_, int col) {
      uint16_t v;
      std::memcpy(&v, b.slots[static_cast<size_t>(base + 8 * i + row_)].p + col, 2);
      return static_cast<uint32_t>(v);
    };
    out[i] = trans ? (M(2 * t, g) | (M(2 * t + 1, g) << 16)) : (M(g, 2 * t) | (M(g, 2 * t + 1) << 16));
  }
  b.yield(State::WarpBar);  // every lane has read
  for (int i = 0; i < 4; i++) r[i] = out[i];
}

void Ctx::cp_async16(void* dst, const void* src, bool valid) {
  Block& b = *blk_;
  char* lo = b.shared.data();
  char* d = static_cast<char*>(dst);
  if (d < lo || d + 16 > lo + b.shared.size() || (d - lo) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0)
    throw std::runtime_error("warpsim: cp.async destination outside shared memory, or an address not 16-byte aligned");
  if (valid) std::memcpy(d, src, 16);
  else std::memset(d, 0, 16);
}

void launch(Dim3 grid, int threads, size_t smem_bytes, const std::function<void(Ctx&)>& body, Stats* stats) {
  if (threads <= 0 || threads > 1024) throw std::runtime_error("warpsim: bad block size");
  Block blk;
  blk.grid = grid;
  blk.n = threads;
  blk.body = &body;
  blk.stats = stats;
  blk.fibers.resize(static_cast<size_t>(threads));
  for (Fiber& f : blk.fibers) f.stack.reset(new char[kStack]);
  blk.ctx.resize(static_cast<size_t>(threads));
  blk.slots.resize(static_cast<size_t>(threads));
  for (int z = 0; z < grid.z; z++)
    for (int y = 0; y < grid.y; y++)
      for (int x = 0; x < grid.x; x++) {
        blk.idx = Dim3{x, y, z};
        blk.shared.assign(smem_bytes ? smem_bytes : 16, static_cast<char>(0xAB));
        blk.error = nullptr;
        blk.run();
        if (stats) stats->blocks++;
      }
}

}  // namespace warpsim
