// Counter-based random numbers: value i of stream `seed` is a pure function mix(seed, i) (SplitMix64's
// finaliser over a Weyl sequence). No state to carry between calls, so dropout masks and NEFTune noise
// can be regenerated in backward / recomputation, resumed from a checkpoint by saving counters only,
// and drawn identically by the CPU and CUDA backends.
#pragma once

#include <cstdint>

// The same functions compile for the GPU (engine/cuda), so both backends draw identical numbers.
#if defined(__CUDACC__)
#define QT_HD __host__ __device__
#else
#define QT_HD
#endif

namespace qt {

QT_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/** rng_u64 below with the stream's mix64(seed) computed once by the caller (the same bits, for kernels that draw many). */
QT_HD inline uint64_t rng_u64_mixed(uint64_t mixed_seed, uint64_t i) { return mix64(mixed_seed + (i + 1) * 0x9e3779b97f4a7c15ull); }

/** 64 random bits, element i of stream seed. */
QT_HD inline uint64_t rng_u64(uint64_t seed, uint64_t i) { return rng_u64_mixed(mix64(seed), i); }

/** Uniform in [0, 1) with 24 random bits (exactly representable as float). */
QT_HD inline float rng_uniform(uint64_t seed, uint64_t i) { return static_cast<float>(rng_u64(seed, i) >> 40) * (1.0f / 16777216.0f); }

/** The LoRA dropout mask's uniform for element i, 24 bits in [0, 1): elements 2k and 2k + 1 share the 64-bit draw
 *  rng_u64(seed, k), element 2k taking its bits 40..63 and 2k + 1 its bits 16..39 (disjoint bits of one SplitMix64
 *  output). Half the hashing of a draw per element: run 14 measured the mask kernels bound by it, not by memory.
 *  rng_mask_pair gives both of a pair from one draw. */
QT_HD inline float rng_mask_half(uint64_t h, bool odd) {
  return static_cast<float>(odd ? (h >> 16) & 0xffffffull : h >> 40) * (1.0f / 16777216.0f);
}
QT_HD inline float rng_mask_uniform_mixed(uint64_t mixed_seed, uint64_t i) {
  return rng_mask_half(rng_u64_mixed(mixed_seed, i >> 1), (i & 1) != 0);
}
QT_HD inline float rng_mask_uniform(uint64_t seed, uint64_t i) { return rng_mask_uniform_mixed(mix64(seed), i); }
/** Elements 2k and 2k + 1 (u0, u1) from one draw. */
QT_HD inline void rng_mask_pair(uint64_t mixed_seed, uint64_t k, float& u0, float& u1) {
  const uint64_t h = rng_u64_mixed(mixed_seed, k);
  u0 = rng_mask_half(h, false);
  u1 = rng_mask_half(h, true);
}

/** Uniform in [0, 1) with 53 random bits. */
QT_HD inline double rng_uniform_double(uint64_t seed, uint64_t i) {
  return static_cast<double>(rng_u64(seed, i) >> 11) * (1.0 / 9007199254740992.0);
}

/** A sub-stream seed: derive(seed, a, b, c) differs for every (a, b, c). */
QT_HD inline uint64_t rng_derive(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  return mix64(mix64(mix64(seed ^ 0x5851f42d4c957f2dull) + a) + b * 0x2545f4914f6cdd1dull + c);
}

}  // namespace qt
