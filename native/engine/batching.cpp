// Batch plans (see batching.h). All randomness is counter-based (rng.h), derived from the trainer's seed
// and the epoch, so the plan of any epoch can be rebuilt exactly after a resume.
#include "batching.h"

#include <algorithm>
#include <numeric>

#include "rng.h"

namespace qt {

std::vector<int32_t> shuffled_indices(int n, uint64_t seed) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  for (int i = n - 1; i > 0; i--) {
    const int j = static_cast<int>(rng_u64(seed, static_cast<uint64_t>(i)) % static_cast<uint64_t>(i + 1));
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(j)]);
  }
  return v;
}

BatchList pack_by_tokens(const std::vector<int32_t>& order, const std::vector<int>& lengths, int budget, bool group_by_length) {
  BatchList out;
  if (order.empty()) return out;
  std::vector<int32_t> seq(order);
  if (group_by_length) {
    // mega-batches of ~50 batches' worth of tokens, each sorted longest first (HF LengthGroupedSampler's idea)
    uint64_t total = 0;
    for (int32_t i : order) total += static_cast<uint64_t>(lengths[static_cast<size_t>(i)]);
    const double mean = static_cast<double>(total) / static_cast<double>(order.size());
    const size_t mega = std::max<size_t>(1, static_cast<size_t>(50.0 * budget / std::max(1.0, mean)));
    for (size_t s = 0; s < seq.size(); s += mega) {
      auto b = seq.begin() + static_cast<long>(s), e = seq.begin() + static_cast<long>(std::min(seq.size(), s + mega));
      std::stable_sort(b, e, [&](int32_t x, int32_t y) { return lengths[static_cast<size_t>(x)] > lengths[static_cast<size_t>(y)]; });
    }
  }
  std::vector<int32_t> cur;
  int longest = 0;
  for (int32_t i : seq) {
    const int len = lengths[static_cast<size_t>(i)];
    const int nl = std::max(longest, len);
    if (!cur.empty() && static_cast<int64_t>(cur.size() + 1) * nl > budget) {
      out.push_back(std::move(cur));
      cur.clear();
      longest = 0;
    }
    cur.push_back(i);
    longest = std::max(longest, len);
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

BatchList token_budget_batches(const std::vector<int>& lengths, const TrainConfig& c) {
  const int n = static_cast<int>(lengths.size());
  std::vector<int32_t> order = shuffled_indices(n, rng_derive(c.seed, 0x7061636bu));  // "pack"
  if (!c.shuffle) std::iota(order.begin(), order.end(), 0);
  return pack_by_tokens(order, lengths, c.token_budget, c.group_by_length);
}

BatchList epoch_plan(const std::vector<int>& lengths, const TrainConfig& c, const BatchList& packed, int64_t epoch) {
  const uint64_t seed = rng_derive(c.seed, 0x65706f63u, static_cast<uint64_t>(epoch));  // "epoc"
  if (c.token_budget_batching) {
    if (!c.shuffle) return packed;
    BatchList out;
    for (int32_t i : shuffled_indices(static_cast<int>(packed.size()), seed)) out.push_back(packed[static_cast<size_t>(i)]);
    return out;
  }
  const int n = static_cast<int>(lengths.size());
  std::vector<int32_t> order(static_cast<size_t>(n));
  if (c.shuffle) order = shuffled_indices(n, seed);
  else std::iota(order.begin(), order.end(), 0);
  BatchList out;
  for (size_t s = 0; s < order.size(); s += static_cast<size_t>(c.batch_rows))
    out.emplace_back(order.begin() + static_cast<long>(s), order.begin() + static_cast<long>(std::min(order.size(), s + static_cast<size_t>(c.batch_rows))));
  return out;
}

BatchList eval_plan(const std::vector<int>& lengths, int rows, int budget) {
  std::vector<int32_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return lengths[static_cast<size_t>(x)] > lengths[static_cast<size_t>(y)]; });
  BatchList out;
  std::vector<int32_t> cur;
  int longest = 0;
  for (int32_t i : order) {
    const int len = lengths[static_cast<size_t>(i)];
    const int nl = std::max(longest, len);
    if (!cur.empty() && (static_cast<int>(cur.size()) >= rows || static_cast<int64_t>(cur.size() + 1) * nl > budget)) {
      out.push_back(std::move(cur));
      cur.clear();
      longest = 0;
    }
    cur.push_back(i);
    longest = std::max(longest, len);
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace qt
