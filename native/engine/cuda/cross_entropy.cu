// Cross-entropy over the vocabulary on the GPU (cpu/cross_entropy.cpp): one block per row of logits; the
// row's max and sum of exponentials are block reductions (float exponentials summed in double, fixed order); rows whose target is
// negative give loss 0 and gradient 0. The caller (model.cpp) runs the lm_head in chunks of rows, so full fp32
// logits never exist for the whole batch; backward overwrites the chunk's logits with dlogits in place.
#include "ops.cuh"

namespace qt::cuda {

namespace {

constexpr int kThreads = 512;

// lse of row x[V] (block-wide)
__device__ double row_lse(const float* x, int V, float* fscratch, double* dscratch) {
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
  mx = block_max(mx, fscratch);
  double s = 0;
  for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(x[j] - mx);  // float exp, double sum
  s = block_sum(s, dscratch);
  return mx + log(s);
}

__global__ void ce_forward_kernel(float* losses, const float* logits, const int32_t* targets, int V) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const size_t n = blockIdx.x;
  const int32_t t = targets[n];
  if (t < 0) {
    if (threadIdx.x == 0) losses[n] = 0.0f;
    return;
  }
  const float* x = logits + n * V;
  const double lse = row_lse(x, V, fs, ds);
  if (threadIdx.x == 0) losses[n] = static_cast<float>(lse - x[t]);
}

__global__ void ce_backward_kernel(float* dlogits, const float* logits, const int32_t* targets, float dloss, int V) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const size_t n = blockIdx.x;
  const int32_t t = targets[n];
  float* d = dlogits + n * V;
  if (t < 0) {
    for (int j = threadIdx.x; j < V; j += blockDim.x) d[j] = 0.0f;
    return;
  }
  const float* x = logits + n * V;
  const double lse = row_lse(x, V, fs, ds);  // ends with a barrier: every read of x is done before d is written
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    float g = expf(static_cast<float>(static_cast<double>(x[j]) - lse)) * dloss;
    if (j == t) g -= dloss;
    d[j] = g;
  }
}

}  // namespace

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int N, int V) {
  Op op("cross_entropy_forward");
  if (N <= 0) return;
  ce_forward_kernel<<<N, kThreads, 0, op.s>>>(losses, logits, targets, V);
  QT_LAUNCH_CHECK();
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, float dloss, int N, int V) {
  Op op("cross_entropy_backward");
  if (N <= 0) return;
  ce_backward_kernel<<<N, kThreads, 0, op.s>>>(dlogits, logits, targets, dloss, V);
  QT_LAUNCH_CHECK();
}

}  // namespace qt::cuda
