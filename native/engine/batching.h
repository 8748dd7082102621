// Micro-batch plans: which samples form each micro-batch of an epoch (sample indices, in row order).
//   fixed rows (the tutorial's batch 4): a seeded shuffle per epoch, then consecutive groups of `batch_rows`
//     (the last one may be smaller), padded to the longest row of the batch;
//   token budget: formed once per trainer: a seeded shuffle, then mega-batches of about 50 batches' worth of
//     tokens, each sorted by length (longest first) when group_by_length, then greedy packing while
//     rows * longest <= token_budget. Every epoch reshuffles the ORDER of these batches, so each epoch has
//     the same number of steps (the schedule's total_steps relies on it).
// Evaluation plans sort by length and pack the same way, without shuffling.
#pragma once

#include <cstdint>
#include <vector>

#include "engine.h"

namespace qt {

using BatchList = std::vector<std::vector<int32_t>>;

/** Seeded Fisher-Yates permutation of 0..n-1 (stream `seed`). */
std::vector<int32_t> shuffled_indices(int n, uint64_t seed);

/** Greedy token-budget packing of `order` (lengths[i] per sample); optional sort by length inside mega-batches. */
BatchList pack_by_tokens(const std::vector<int32_t>& order, const std::vector<int>& lengths, int budget, bool group_by_length);

/** The token-budget batches of a trainer (formed once). */
BatchList token_budget_batches(const std::vector<int>& lengths, const TrainConfig& c);

/** The micro-batches of epoch `epoch`. `packed` is token_budget_batches() in token-budget mode, else unused. */
BatchList epoch_plan(const std::vector<int>& lengths, const TrainConfig& c, const BatchList& packed, int64_t epoch);

/** An evaluation plan: every sample once, sorted by length (longest first), at most `rows` rows per batch
 *  and rows * longest <= budget. */
BatchList eval_plan(const std::vector<int>& lengths, int rows, int budget);

}  // namespace qt
