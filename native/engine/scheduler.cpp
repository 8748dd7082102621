// LR schedule lambdas (see scheduler.h), written exactly as transformers writes them.
#include "scheduler.h"

#include <algorithm>
#include <cmath>

namespace qt {

double lr_lambda(Schedule s, int64_t step, int64_t warmup, int64_t total, double num_cycles) {
  const double pi = 3.14159265358979323846;
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  switch (s) {
    case Schedule::Constant: return 1.0;
    case Schedule::Linear:
      return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
    case Schedule::Cosine: return std::max(0.0, 0.5 * (1.0 + std::cos(pi * 0.5 * 2.0 * progress)));
    case Schedule::CosineWithRestarts:
      if (progress >= 1.0) return 0.0;
      return std::max(0.0, 0.5 * (1.0 + std::cos(pi * std::fmod(num_cycles * progress, 1.0))));
  }
  return 1.0;
}

}  // namespace qt
