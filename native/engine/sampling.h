// Next-token selection on the host (every backend downloads the last row of logits: V floats per token).
#pragma once

#include <cstdint>
#include <vector>

#include "engine.h"

namespace qt {

/** Hugging Face semantics, in HF's order: repetition penalty over `history` (prompt + generated; each id once:
 *  negative logits * penalty, positive / penalty), then greedy argmax when temperature == 0, else temperature,
 *  top-k (keeps ties with the k-th value), top-p (drops the low tail whose cumulative probability is
 *  <= 1 - top_p, always keeping the most likely token) and a draw from the softmax with the uniform number
 *  rng_uniform_double(seed, step). `logits` [V] is modified in place. */
int32_t sample_next(std::vector<float>& logits, const SamplingConfig& s, const std::vector<int32_t>& history,
                    uint64_t seed, uint64_t step);

}  // namespace qt
