// NF4 kernels that read the 4-bit codes 16 bytes (32 weights) at a time (ENGINE_FACTS §4 layout: blocks of 64
// weights with one absmax, two codes per byte, the even element in the HIGH nibble):
//   nf4_dequant_vec  the weight's values into fp32 / bf16 / fp16 scratch (one thread per 32 weights per step of a
//                    grid-stride loop, 16-byte stores), bit-identical to the one-byte-per-thread kernel;
//   nf4_dequant16    the same values into bf16 / fp16 with every warp store 512 contiguous bytes (run 3): a thread
//                    takes 8 weights (4 bytes of codes, 16 bytes out) at a time, 4 such units in flight, consecutive
//                    threads consecutive units. nf4_dequant_vec's 16-byte stores sit 64 bytes apart across a warp
//                    (half sectors per store), which may be why it moved ~1.8 TB/s in run 2; nf4.cu times both on
//                    the GPU and keeps the faster (QT_CUDA_DEQUANT=auto; the same bits either way);
//   nf4_gemv         out[n, o] = sum_c x[n, c] w[o, c] (+ bias) for a few rows n (decode), straight from the codes:
//                    no dequantized copy is ever written. Run 2's version (QT_CUDA_GEMV=1): a block owns 4 output
//                    features; its 128 threads read the codes of chunks t, t + 128, ... (16 bytes of each of the 4
//                    rows: coalesced 512 bytes per warp and row) and the matching 32 values of x (fp32, cached);
//                    warps, then the block, sum their lanes in a fixed order. Exact fp32 products of the
//                    dequantized weights: w = code * absmax, sum_c code_c x_c per chunk, times absmax.
//   nf4_gemv3        the same products, laid out for bandwidth (QT_CUDA_GEMV=3, the default since run 3): run 2's
//                    kernel reached 0.63 TB/s because each 4-row block lived for one 16-byte load per thread and
//                    refilled its table every time. Here a WARP owns 4 whole rows and walks them 2 chunks per lane
//                    at a time (8 independent 16-byte loads in flight per lane), a persistent grid of 256-thread
//                    blocks (as many as fit on the GPU, the launcher's choice) strides over the row groups, so
//                    the table is filled once per block, and a row's sum is one warp's xor-shuffle tree (fixed
//                    order: deterministic, no shared-memory reduction, no block barrier after the table).
//   nf4_gemv4        nf4_gemv3 for one row of x (decode), with x staged in shared memory once per block
//                    (QT_CUDA_GEMV=4). In nf4_gemv3 each lane reads its chunk's 32 x values straight from global
//                    memory: 8 16-byte loads whose addresses sit 128 bytes apart across the warp, so each load
//                    instruction touches 32 cache lines (32 L1 wavefronts) and shares the L1/shared pipe with the
//                    per-weight table reads. Here the block first copies x into shared memory transposed per tile
//                    of 32 chunks (nf4_gemv_stage_x), so a warp's 8 loads per chunk step read 512 contiguous bytes
//                    each (4 wavefronts, no bank conflict). The products and their order are nf4_gemv3's: the same
//                    bits.
//   nf4_gemv6        nf4_gemv4 with nf4_chunk_dot's table offsets (kLutOffset; QT_CUDA_GEMV=6): fewer integer instructions
//                    per weight for the same table reads and products (the same bits).
//   nf4_gemv7        nf4_gemv6 reading both of a code byte's values in one 32-bit read of a per-lane fp16 pair table
//                    (kLutPairF16; QT_CUDA_GEMV=7, for weights multiplied in 16-bit compute; fp32 compute keeps gemv6's
//                    exact products): half the shared-memory reads per weight, the pipe runs 4-6 showed limits these
//                    kernels.
// Both take the 16 NF4 code values and bnb's 256-entry dynamic map in shared memory (`tab`, 272 floats, filled by
// the caller): the codes index them per lane, which constant memory would serialise.
// Templates over the kernel context (kernel_ctx.h): nf4.cu launches them, native/tests simulates them.
#pragma once

#include "kernel_ctx.h"

namespace qt::kern {

struct Nf4Args {
  const uint8_t* codes = nullptr;
  const float* absmax = nullptr;        // without double quantization
  const uint8_t* absmax_q = nullptr;    // with double quantization
  const float* absmax_scale = nullptr;  // [ceil(nblocks / 256)]
  float offset = 0;
  bool dq = false;
};

constexpr int kNf4TabSize = 16 + 256;  // codes, then the dynamic map

/** The block's absmax (double quant: map[q] * scale + offset, each op rounded once, as the CPU computes it). */
QT_KFN float nf4_block_absmax(const Nf4Args& w, const float* tab, int64_t blk) {
  if (!w.dq) return ldg_f32(w.absmax + blk);
  return add_rn(mul_rn(tab[16 + ldg_u8(w.absmax_q + blk)], ldg_f32(w.absmax_scale + blk / 256)), w.offset);
}

QT_KFN uint32_t u4_word(const U4& v, int q) { return q == 0 ? v.x : q == 1 ? v.y : q == 2 ? v.z : v.w; }

/** xv[4 s .. 4 s + 3] = p[s * step .. s * step + 3] for s = 0..7: a chunk's 32 x values in 8 16-byte loads (step 4:
 *  contiguous; 128: nf4_gemv4's staged tiles). */
QT_KFN void load_x32(float* xv, const float* p, int step) {
  QT_UNROLL
  for (int s = 0; s < 8; s++) {
    const F4 f = ldg4(p + s * step);
    xv[4 * s] = f.x;
    xv[4 * s + 1] = f.y;
    xv[4 * s + 2] = f.z;
    xv[4 * s + 3] = f.w;
  }
}

/** The table entry at byte offset `off` (a code times 4). */
QT_KFN float nf4_tab_at(const float* tab, uint32_t off) {
  return *reinterpret_cast<const float*>(reinterpret_cast<const char*>(tab) + off);
}

/** Byte k of v, zero-extended: one PRMT on the GPU (an opaque intrinsic, so the compiler cannot fold it back into a
 *  shift and mask of the original word per lookup). */
QT_KFN uint32_t byte_of(uint32_t v, int k) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(v, 0u, 0x4440u + static_cast<uint32_t>(k));
#else
  return (v >> (8 * k)) & 0xffu;
#endif
}

/** How nf4_chunk_dot finds a weight's code value:
 *  kLutNibble  tab[code], the code a shift and a mask of its byte (nf4_gemv3, nf4_gemv4);
 *  kLutOffset  the same table reads, each code word's table offsets (code x 4) formed 4 at a time, the 4 high
 *              nibbles by one shift and mask of the word and the 4 low ones by another, so each lookup takes one byte
 *              of them (one PRMT) instead of a shift and a mask of its own (nf4_gemv6): the same bits;
 *  kLutPairF16 one 32-bit read per code BYTE from the fp16 pair table (nf4_pair_fill: both weights' code values as
 *              fp16, a copy per lane so no read ever conflicts), so half the shared-memory reads per weight, with the
 *              code values rounded to fp16 (relative error <= 2^-11; nf4_gemv7, for 16-bit compute only). */
enum Lut { kLutNibble = 0, kLutOffset = 1, kLutPairF16 = 2 };

/** The fp16 pair table: word b * 32 + l = lane l's copy of byte b's code values (the high nibble's in bits 0..15, the
 *  even element), so lane l's reads all fall in bank l. 32 KB. */
constexpr int kNf4PairWords = 256 * 32;
template <class Ctx>
QT_KFN void nf4_pair_fill(Ctx& c, uint32_t* ptab, const float* tab) {
  for (int i = c.tid(); i < kNf4PairWords; i += c.nthreads()) {
    const int b = i / 32;
    ptab[i] = static_cast<uint32_t>(f16_bits(tab[b >> 4])) | (static_cast<uint32_t>(f16_bits(tab[b & 15])) << 16);
  }
}

/** A chunk's dot product before its block's absmax: sum over its 32 weights, in element order, of code value times
 *  x (xv = the chunk's 32 x values), the code values found as LUT says (plane: this lane's column of the fp16 pair
 *  table, kLutPairF16 only). */
template <int LUT>
QT_KFN float nf4_chunk_dot(const U4& cw, const float* xv, const float* tab, const uint32_t* plane = nullptr) {
  float sum = 0.0f;
  QT_UNROLL
  for (int q = 0; q < 4; q++) {
    const uint32_t word = u4_word(cw, q);
    if (LUT == kLutPairF16) {
      QT_UNROLL
      for (int k = 0; k < 4; k++) {
        const uint32_t pr = plane[byte_of(word, k) * 32];
        sum += f16_value(static_cast<uint16_t>(pr & 0xffffu)) * xv[8 * q + 2 * k];
        sum += f16_value(static_cast<uint16_t>(pr >> 16)) * xv[8 * q + 2 * k + 1];
      }
    } else if (LUT == kLutOffset) {
      const uint32_t hi = (word >> 2) & 0x3c3c3c3cu, lo = (word << 2) & 0x3c3c3c3cu;  // byte k: nibble of byte k x 4
      QT_UNROLL
      for (int k = 0; k < 4; k++) {
        sum += nf4_tab_at(tab, byte_of(hi, k)) * xv[8 * q + 2 * k];
        sum += nf4_tab_at(tab, byte_of(lo, k)) * xv[8 * q + 2 * k + 1];
      }
    } else {
      QT_UNROLL
      for (int k = 0; k < 4; k++) {
        const uint32_t byte = (word >> (8 * k)) & 0xffu;  // little endian: byte 4q + k of the chunk
        sum += tab[byte >> 4] * xv[8 * q + 2 * k];
        sum += tab[byte & 15u] * xv[8 * q + 2 * k + 1];
      }
    }
  }
  return sum;
}

enum class DqOut { F32 = 0, BF16 = 1, F16 = 2 };

/** out[i] = value of weight element i for the n = 32 * nchunks elements (n % 32 == 0); grid-stride over chunks. */
template <DqOut OUT, class Ctx>
QT_KFN void nf4_dequant_vec(Ctx& c, void* out, const Nf4Args& w, int64_t nchunks, const float* tab) {
  const int64_t stride = static_cast<int64_t>(c.nbx()) * c.nthreads();
  for (int64_t ch = static_cast<int64_t>(c.bx()) * c.nthreads() + c.tid(); ch < nchunks; ch += stride) {
    const U4 cw = ldg16(w.codes + ch * 16);
    const float am = nf4_block_absmax(w, tab, ch / 2);  // 32 | 64: a chunk lies in one block
    float v[32];
    QT_UNROLL
    for (int q = 0; q < 4; q++) {
      const uint32_t word = u4_word(cw, q);
      QT_UNROLL
      for (int k = 0; k < 4; k++) {
        const uint32_t byte = (word >> (8 * k)) & 0xffu;  // little endian: byte 4q + k of the chunk
        v[8 * q + 2 * k] = mul_rn(tab[byte >> 4], am);
        v[8 * q + 2 * k + 1] = mul_rn(tab[byte & 15u], am);
      }
    }
    if (OUT == DqOut::F32) {
      float* o = static_cast<float*>(out) + ch * 32;
      QT_UNROLL
      for (int s = 0; s < 8; s++) stg16(o + 4 * s, U4{f32_bits(v[4 * s]), f32_bits(v[4 * s + 1]), f32_bits(v[4 * s + 2]), f32_bits(v[4 * s + 3])});
    } else {
      uint16_t* o = static_cast<uint16_t*>(out) + ch * 32;
      QT_UNROLL
      for (int s = 0; s < 4; s++) {
        uint32_t p[4];
        QT_UNROLL
        for (int e = 0; e < 4; e++) {
          const float lo = v[8 * s + 2 * e], hi = v[8 * s + 2 * e + 1];
          p[e] = OUT == DqOut::BF16 ? pack_bf16(lo, hi)
                                    : static_cast<uint32_t>(f16_bits(lo)) | (static_cast<uint32_t>(f16_bits(hi)) << 16);
        }
        stg16(o + 8 * s, U4{p[0], p[1], p[2], p[3]});
      }
    }
  }
}

/** 16-bit outputs (OUT = BF16 | F16) of n = 8 * nunits weights (n % 8 == 0): grid-stride over units of 8 weights,
 *  units u, u + T, u + 2T, u + 3T per step (T = threads in the grid; loads first, then the stores). */
template <DqOut OUT, class Ctx>
QT_KFN void nf4_dequant16(Ctx& c, void* out, const Nf4Args& w, int64_t nunits, const float* tab) {
  const int64_t T = static_cast<int64_t>(c.nbx()) * c.nthreads();
  for (int64_t u0 = static_cast<int64_t>(c.bx()) * c.nthreads() + c.tid(); u0 < nunits; u0 += 4 * T) {
    uint32_t cw[4];
    float am[4];
    QT_UNROLL
    for (int k = 0; k < 4; k++) {
      const int64_t u = u0 + k * T;
      cw[k] = u < nunits ? ldg32(w.codes + u * 4) : 0u;
      am[k] = u < nunits ? nf4_block_absmax(w, tab, u / 8) : 0.0f;  // 8 units per block of 64
    }
    QT_UNROLL
    for (int k = 0; k < 4; k++) {
      const int64_t u = u0 + k * T;
      if (u >= nunits) continue;
      uint32_t p[4];
      QT_UNROLL
      for (int e = 0; e < 4; e++) {
        const uint32_t byte = (cw[k] >> (8 * e)) & 0xffu;  // little endian: byte e of the unit, weights 2e and 2e + 1
        const float lo = mul_rn(tab[byte >> 4], am[k]), hi = mul_rn(tab[byte & 15u], am[k]);
        p[e] = OUT == DqOut::BF16 ? pack_bf16(lo, hi) : static_cast<uint32_t>(f16_bits(lo)) | (static_cast<uint32_t>(f16_bits(hi)) << 16);
      }
      stg16(static_cast<uint16_t*>(out) + u * 8, U4{p[0], p[1], p[2], p[3]});
    }
  }
}

/** One weight of a multi-weight GEMV: out[OC] = x @ w^T (+ bias). */
struct GemvSeg {
  float* out = nullptr;
  const float* bias = nullptr;
  Nf4Args w;
  int OC = 0;
};
constexpr int kGemvMaxSegs = 3;

struct GemvArgs {
  float* out = nullptr;        // [N, OC]
  const float* x = nullptr;    // [N, C]
  const float* bias = nullptr; // [OC] or null
  Nf4Args w;                   // [OC, C]
  int N = 0, C = 0, OC = 0;    // C % 32 == 0
  // nf4_gemv4 only (N = 1): nseg > 0 multiplies x by each of seg[0 .. nseg) instead of w (one launch for a layer's
  // q/k/v or gate/up, which share their input); each weight's rows are split into its own row groups
  int nseg = 0;
  GemvSeg seg[kGemvMaxSegs];
  bool late_trigger = false;  // nf4_gemv4 under PDL: the next kernel launches as this one's blocks exit (QT_CUDA_PDL=2)
};

/** The weight, output and rows of row group g (rows RW g ..) of a GEMV: p's own, or the segment holding group g
 *  (segments in order, each ceil(OC / RW) groups); *o0 = the group's first row within its weight. Value selects, so
 *  the parameters are never indexed at run time. */
template <int RW>
QT_KFN GemvSeg gemv_group(const GemvArgs& p, int g, int* o0) {
  GemvSeg s;
  if (p.nseg == 0) {
    s.out = p.out;
    s.bias = p.bias;
    s.w = p.w;
    s.OC = p.OC;
    *o0 = g * RW;
    return s;
  }
  const int g1 = (p.seg[0].OC + RW - 1) / RW, g2 = g1 + (p.nseg > 1 ? (p.seg[1].OC + RW - 1) / RW : 0);
  const int k = g < g1 ? 0 : g < g2 ? 1 : 2;
  s = k == 0 ? p.seg[0] : k == 1 ? p.seg[1] : p.seg[2];
  *o0 = (g - (k == 0 ? 0 : k == 1 ? g1 : g2)) * RW;
  return s;
}

/** Row groups of a GEMV with RW rows per group (all segments'). */
template <int RW>
QT_KFN int gemv_groups(const GemvArgs& p) {
  if (p.nseg == 0) return (p.OC + RW - 1) / RW;
  int n = 0;
  for (int k = 0; k < p.nseg; k++) n += (p.seg[k].OC + RW - 1) / RW;
  return n;
}

constexpr int kGemvThreads = 128;
constexpr int kGemvRowsPerBlock = 4;
/** Shared memory of nf4_gemv: the table, then the warps' partial sums [4 warps][4 rows][4 inputs]. */
constexpr int kGemvSmem = (kNf4TabSize + (kGemvThreads / 32) * kGemvRowsPerBlock * 4) * 4;

/** NR = N (1..4). grid ceil(OC / 4) blocks of 128 threads: the block's 4 output features, the C chunks split over
 *  its 4 warps (chunk = warp * 32 + lane, then every 128th), the warps' sums added in a fixed order (deterministic).
 *  Many small blocks keep enough 16-byte loads in flight to stream the codes at full bandwidth. */
template <int NR, class Ctx>
QT_KFN void nf4_gemv(Ctx& c, const GemvArgs& p, const float* tab) {
  constexpr int RW = kGemvRowsPerBlock, NW = kGemvThreads / 32;
  float* red = reinterpret_cast<float*>(c.smem()) + kNf4TabSize;  // [NW][RW][4]
  const int warp = c.tid() / 32, lane = c.tid() % 32;
  const int o0 = c.bx() * RW;
  const int chunks = p.C / 32;
  const int64_t row_bytes = p.C / 2;
  float acc[RW][NR];
  QT_UNROLL
  for (int r = 0; r < RW; r++) {
    QT_UNROLL
    for (int n = 0; n < NR; n++) acc[r][n] = 0.0f;
  }
  for (int ch = warp * 32 + lane; ch < chunks; ch += kGemvThreads) {
    U4 cw[RW];
    float am[RW];
    QT_UNROLL
    for (int r = 0; r < RW; r++) {
      const int o = o0 + r;
      if (o < p.OC) {
        cw[r] = ldg16(p.w.codes + static_cast<int64_t>(o) * row_bytes + static_cast<int64_t>(ch) * 16);
        am[r] = nf4_block_absmax(p.w, tab, (static_cast<int64_t>(o) * p.C + static_cast<int64_t>(ch) * 32) / 64);
      } else {
        cw[r] = U4{0, 0, 0, 0};
        am[r] = 0.0f;
      }
    }
    QT_UNROLL
    for (int n = 0; n < NR; n++) {
      const float* xr = p.x + static_cast<int64_t>(n) * p.C + static_cast<int64_t>(ch) * 32;
      float xv[32];
      load_x32(xv, xr, 4);
      QT_UNROLL
      for (int r = 0; r < RW; r++) {
        const float s = nf4_chunk_dot<kLutNibble>(cw[r], xv, tab);
        acc[r][n] += s * am[r];
      }
    }
  }
  QT_UNROLL
  for (int r = 0; r < RW; r++) {
    QT_UNROLL
    for (int n = 0; n < NR; n++) {
      const float v = warp_xor_sum(c, acc[r][n]);
      if (lane == 0) red[(warp * RW + r) * 4 + n] = v;
    }
  }
  c.sync();
  if (c.tid() < RW * NR) {
    const int r = c.tid() / NR, n = c.tid() % NR, o = o0 + r;
    if (o < p.OC) {
      float v = 0.0f;
      for (int w = 0; w < NW; w++) v += red[(w * RW + r) * 4 + n];
      p.out[static_cast<int64_t>(n) * p.OC + o] = v + (p.bias ? p.bias[o] : 0.0f);
    }
  }
}

// ---- nf4_gemv4: x staged in shared memory (one row) --------------------------------------------------------

/** Floats of staged x for C inputs: whole tiles of 32 chunks (1024 values; the last tile may be partial). */
QT_KFN int gemv4_xs_floats(int C) { return (C / 32 + 31) / 32 * 1024; }
/** Shared memory of nf4_gemv4: the table, then the staged x (nf4_gemv7: then the fp16 pair table). */
QT_KFN int gemv4_smem_bytes(int C, int lut = kLutNibble) {
  return (kNf4TabSize + gemv4_xs_floats(C) + (lut == kLutPairF16 ? kNf4PairWords : 0)) * 4;
}

/** xs <- x[0, C) transposed per tile of 32 chunks: value j of chunk ch (x[32 ch + j]) lives at float4 slot
 *  (ch / 32) * 256 + (j / 4) * 32 + ch % 32, element j % 4. Slot i of the block's walk is written by thread
 *  i % nthreads, so consecutive threads write consecutive 16 bytes (no bank conflict); the caller syncs after. */
template <class Ctx>
QT_KFN void nf4_gemv_stage_x(Ctx& c, float* xs, const float* x, int C) {
  const int chunks = C / 32, slots = gemv4_xs_floats(C) / 4;
  for (int i = c.tid(); i < slots; i += c.nthreads()) {
    const int tile = i / 256, s = (i / 32) % 8, ch = tile * 32 + i % 32;
    if (ch >= chunks) continue;  // a partial last tile: never read
    const F4 f = ldg4(x + static_cast<int64_t>(ch) * 32 + 4 * s);
    float* d = xs + 4 * static_cast<int64_t>(i);
    d[0] = f.x;
    d[1] = f.y;
    d[2] = f.z;
    d[3] = f.w;
  }
}

/** The 32 x values of chunk ch from the staged copy (a warp's lanes hold 32 consecutive chunks of one tile, so
 *  each of the 8 loads reads 512 contiguous bytes; generic addresses, shared memory here). */
QT_KFN void load_staged_x(float* xv, const float* xs, int ch) {
  load_x32(xv, xs + (static_cast<int64_t>(ch / 32) * 256 + ch % 32) * 4, 128);
}

constexpr int kGemv3Threads = 256;     // 8 warps
constexpr int kGemv3RowsPerWarp = 4;   // output features per warp (the x values each lane loads serve all 4)
constexpr int kGemv3Unroll = 2;        // chunks per lane and row whose loads are issued together (N = 1)
constexpr int kGemv3Smem = kNf4TabSize * 4;

/** NR = N (1..4). Any grid (blocks of kGemv3Threads): warp w of block b takes row groups g = b * 8 + w, then every
 *  (nbx * 8)-th; group g is rows RW g .. RW g + RW - 1 (RW = 4 unless given). Lane l reads chunks l, l + 32, ... of
 *  each row, U per row and step (N = 1: 2 unless given, all U x RW loads of a step before any use; N > 1: 1, the
 *  registers go to the rows of x); its partial sums are added in chunk order, then the warp's lanes by a fixed xor
 *  tree, so a row's result does not depend on RW, U or the grid. XS: x comes from xs, staged by nf4_gemv_stage_x
 *  (nf4_gemv4: RW 2 or 1 with U 4 or 8 keeps 8 loads in flight per lane and gives 2-4x the warps of RW = 4 on
 *  4096-row weights, which run 4's profile showed at 8 warps per SM). LUT: how nf4_chunk_dot finds code values
 *  (kLutOffset: nf4_gemv6; kLutPairF16: nf4_gemv7, ptab = the block's fp16 pair table). */
template <int NR, bool XS = false, int RW = kGemv3RowsPerWarp, int U = (NR == 1 ? kGemv3Unroll : 1), int LUT = kLutNibble, class Ctx>
QT_KFN void nf4_gemv3(Ctx& c, const GemvArgs& p, const float* tab, const float* xs = nullptr, const uint32_t* ptab = nullptr) {
  static_assert(!XS || NR == 1, "x is staged in shared memory for one row only");
  constexpr int NWB = kGemv3Threads / 32;
  const int warp = c.tid() / 32, lane = c.tid() % 32;
  const int chunks = p.C / 32;
  const int64_t row_bytes = p.C / 2;
  const int groups = XS ? gemv_groups<RW>(p) : (p.OC + RW - 1) / RW;  // XS: nf4_gemv4, which may have segments
  const int nwarps = c.nbx() * NWB;
  for (int gi = c.bx() * NWB + warp; gi < groups; gi += nwarps) {  // uniform per warp
    int o0 = gi * RW;
    GemvSeg sg;
    if constexpr (XS) sg = gemv_group<RW>(p, gi, &o0);
    const Nf4Args& w = XS ? sg.w : p.w;
    const int OC = XS ? sg.OC : p.OC;
    float acc[RW][NR];
    QT_UNROLL
    for (int r = 0; r < RW; r++) {
      QT_UNROLL
      for (int n = 0; n < NR; n++) acc[r][n] = 0.0f;
    }
    for (int base = 0; base < chunks; base += 32 * U) {  // uniform per warp
      U4 cw[U][RW];
      float am[U][RW];
      QT_UNROLL
      for (int u = 0; u < U; u++) {
        const int ch = base + u * 32 + lane;
        QT_UNROLL
        for (int r = 0; r < RW; r++) {
          const int o = o0 + r;
          if (ch < chunks && o < OC) {
            cw[u][r] = ldg16(w.codes + static_cast<int64_t>(o) * row_bytes + static_cast<int64_t>(ch) * 16);
            am[u][r] = nf4_block_absmax(w, tab, (static_cast<int64_t>(o) * p.C + static_cast<int64_t>(ch) * 32) / 64);
          } else {
            cw[u][r] = U4{0, 0, 0, 0};
            am[u][r] = 0.0f;
          }
        }
      }
      QT_UNROLL
      for (int u = 0; u < U; u++) {
        const int ch = base + u * 32 + lane;
        if (ch >= chunks) continue;  // lanes past the row's end (no x to read); their cw are zero anyway
        QT_UNROLL
        for (int n = 0; n < NR; n++) {
          float xv[32];
          if constexpr (XS) {
            load_staged_x(xv, xs, ch);
          } else {
            const float* xr = p.x + static_cast<int64_t>(n) * p.C + static_cast<int64_t>(ch) * 32;
            load_x32(xv, xr, 4);
          }
          QT_UNROLL
          for (int r = 0; r < RW; r++) {
            const float sum = nf4_chunk_dot<LUT>(cw[u][r], xv, tab, LUT == kLutPairF16 ? ptab + lane : nullptr);
            acc[r][n] += sum * am[u][r];
          }
        }
      }
    }
    QT_UNROLL
    for (int r = 0; r < RW; r++) {
      QT_UNROLL
      for (int n = 0; n < NR; n++) {
        const float v = warp_xor_sum(c, acc[r][n]);
        const int o = o0 + r;
        if constexpr (XS) {
          if (lane == 0 && o < OC) sg.out[o] = v + (sg.bias ? sg.bias[o] : 0.0f);  // N = 1
        } else {
          if (lane == 0 && o < p.OC) p.out[static_cast<int64_t>(n) * p.OC + o] = v + (p.bias ? p.bias[o] : 0.0f);
        }
      }
    }
  }
}

}  // namespace qt::kern
