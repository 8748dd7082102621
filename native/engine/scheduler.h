// Learning-rate schedules with linear warmup, matching transformers' optimization.py lambdas
// (get_cosine_with_hard_restarts_schedule_with_warmup = ENGINE_FACTS §7, get_cosine_schedule_with_warmup,
// get_linear_schedule_with_warmup, get_constant_schedule_with_warmup). `step` counts optimizer steps taken
// before this one (LambdaLR's last_epoch), so the very first step with warmup > 0 uses lr 0, as in HF.
#pragma once

#include <cstdint>

#include "engine.h"

namespace qt {

/** The multiplier of the base learning rate at `step`. Cosine ignores num_cycles (HF's default 0.5: one
 *  half-cosine from 1 to 0); CosineWithRestarts uses num_cycles hard restarts. */
double lr_lambda(Schedule s, int64_t step, int64_t warmup, int64_t total, double num_cycles);

inline float schedule_lr(const TrainConfig& c, int64_t step) {
  return static_cast<float>(c.lr * lr_lambda(c.schedule, step, c.warmup_steps, c.total_steps, c.num_cycles));
}

}  // namespace qt
