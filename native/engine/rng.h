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

/** The LoRA dropout mask's uniform for element i, 16 bits in [0, 1): elements 4k .. 4k + 3 share the 64-bit draw
 *  rng_u64(seed, k), element 4k + j taking its bits 48 - 16 j .. 63 - 16 j (disjoint bits of one SplitMix64 output;
 *  a keep rate p is then met to 2^-16). A quarter of a draw per element: the mask kernels were bound by the hashing
 *  (run 14; pairs since run 15, quads since run 20). rng_mask_quad gives the four of a draw, rng_mask_pair two. */
QT_HD inline float rng_mask_field(uint64_t h, unsigned j) {
  return static_cast<float>((h >> (48 - 16 * j)) & 0xffffull) * (1.0f / 65536.0f);
}
QT_HD inline float rng_mask_uniform_mixed(uint64_t mixed_seed, uint64_t i) {
  return rng_mask_field(rng_u64_mixed(mixed_seed, i >> 2), static_cast<unsigned>(i & 3));
}
QT_HD inline float rng_mask_uniform(uint64_t seed, uint64_t i) { return rng_mask_uniform_mixed(mix64(seed), i); }
/** Elements 4k .. 4k + 3 from one draw. */
QT_HD inline void rng_mask_quad(uint64_t mixed_seed, uint64_t k, float (&u)[4]) {
  const uint64_t h = rng_u64_mixed(mixed_seed, k);
  for (unsigned j = 0; j < 4; j++) u[j] = rng_mask_field(h, j);
}
/** Elements 2k and 2k + 1 (u0, u1): half of draw k / 2. */
QT_HD inline void rng_mask_pair(uint64_t mixed_seed, uint64_t k, float& u0, float& u1) {
  const uint64_t h = rng_u64_mixed(mixed_seed, k >> 1);
  const unsigned j = 2 * static_cast<unsigned>(k & 1);
  u0 = rng_mask_field(h, j);
  u1 = rng_mask_field(h, j + 1);
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
