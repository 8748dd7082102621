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

// Loss and gradient of a row in two reads of it: each thread's running max and sum of exponentials (rescaled when its
// max grows) in one pass, combined over the block in a fixed order, then the gradient. float4 accesses when V % 4 == 0
// (rows then stay 16-byte aligned; the logits buffer is). In place (dlogits == logits): each thread writes only the
// elements it has just read, and the target's logit is read before the first barrier.
template <bool kVec4>
__global__ void ce_fused_kernel(float* losses, float* dlogits, const float* logits, const int32_t* targets, float dloss,
                                int V) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const size_t n = blockIdx.x;
  const int32_t t = targets[n];
  const float* x = logits + n * V;
  float* d = dlogits + n * V;
  if (t < 0) {
    for (int j = threadIdx.x; j < V; j += blockDim.x) d[j] = 0.0f;
    if (threadIdx.x == 0) losses[n] = 0.0f;
    return;
  }
  const float xt = threadIdx.x == 0 ? x[t] : 0.0f;
  float m = -INFINITY;
  double s = 0;
  auto take = [&](float v) {
    if (v > m) {
      s *= static_cast<double>(expf(m - v));  // 0 while m is still -inf (s is 0 then too)
      m = v;
    }
    s += expf(v - m);
  };
  const int V4 = kVec4 ? V / 4 : 0;
  for (int j = threadIdx.x; j < V4; j += blockDim.x) {
    const float4 v = reinterpret_cast<const float4*>(x)[j];
    take(v.x);
    take(v.y);
    take(v.z);
    take(v.w);
  }
  for (int j = 4 * V4 + threadIdx.x; j < V; j += blockDim.x) take(x[j]);
  const float M = block_max(m, fs);
  const double S = block_sum(m == -INFINITY ? 0.0 : s * static_cast<double>(expf(m - M)), ds);
  const double lse = M + log(S);
  if (threadIdx.x == 0) losses[n] = static_cast<float>(lse - xt);
  auto grad = [&](float v, int j) {
    float g = expf(static_cast<float>(static_cast<double>(v) - lse)) * dloss;
    return j == t ? g - dloss : g;
  };
  for (int j = threadIdx.x; j < V4; j += blockDim.x) {
    const float4 v = reinterpret_cast<const float4*>(x)[j];
    reinterpret_cast<float4*>(d)[j] = make_float4(grad(v.x, 4 * j), grad(v.y, 4 * j + 1), grad(v.z, 4 * j + 2), grad(v.w, 4 * j + 3));
  }
  for (int j = 4 * V4 + threadIdx.x; j < V; j += blockDim.x) d[j] = grad(x[j], j);
}

}  // namespace

void cross_entropy_fused(float* losses, float* dlogits, const float* logits, const int32_t* targets, float dloss, int N,
                         int V) {
  Op op("cross_entropy_fused");
  if (N <= 0) return;
  const bool vec4 = V % 4 == 0 && aligned16(logits) && aligned16(dlogits);
  if (vec4) ce_fused_kernel<true><<<N, kThreads, 0, op.s>>>(losses, dlogits, logits, targets, dloss, V);
  else ce_fused_kernel<false><<<N, kThreads, 0, op.s>>>(losses, dlogits, logits, targets, dloss, V);
  QT_LAUNCH_CHECK();
}

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
