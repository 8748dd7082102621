// Greedy decoding's next token on the backend: the first index of each row's maximum (torch.argmax, std::max_element
// over finite values), so a greedy step downloads one id instead of the row of logits. A row holding a NaN gives -1:
// the caller then samples from the downloaded logits on the host, whose (std::max_element) answer for NaNs a parallel
// reduction could not reproduce.
#include <cmath>

#include "ops.h"

namespace qt::cpu {

void argmax_rows(int32_t* out, const float* x, int N, int V) {
  for (int n = 0; n < N; n++) {
    const float* r = x + static_cast<size_t>(n) * V;
    int32_t best = 0;
    bool nan = false;
    for (int j = 0; j < V; j++) {
      if (std::isnan(r[j])) nan = true;
      if (r[j] > r[best]) best = j;
    }
    out[n] = nan ? -1 : best;
  }
}

}  // namespace qt::cpu
