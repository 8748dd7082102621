// argmax_rows on the GPU (cpu/argmax.cpp): one block per row; each thread keeps the (value, index) maximum of its
// strided slice, then a block reduction on (larger value, then smaller index), which is the first maximum for finite
// values whatever the reduction's order; a NaN anywhere in the row gives -1, as on the CPU.
#include "ops.cuh"

namespace qt::cuda {

namespace {

constexpr int kThreads = 1024;

struct Best {
  float v;
  int i;
};

__device__ __forceinline__ Best better(Best a, Best b) { return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a; }

// Launched with PDL (launch_pdl; a greedy decode step's last kernel): waits for the lm_head first.
__global__ void __launch_bounds__(kThreads) argmax_rows_kernel(int32_t* out, const float* x, int V) {
  kern::grid_dep_begin();
  __shared__ float sv[32];
  __shared__ int si[32];
  __shared__ int snan;
  if (threadIdx.x == 0) snan = 0;
  __syncthreads();
  const float* r = x + static_cast<size_t>(blockIdx.x) * V;
  Best b{-INFINITY, V};
  bool nan = false;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float v = r[j];
    nan = nan || isnan(v);
    b = better(b, Best{v, j});
  }
  if (nan) snan = 1;
  for (int o = 16; o > 0; o >>= 1) b = better(b, Best{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)});
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  if (lane == 0) {
    sv[warp] = b.v;
    si[warp] = b.i;
  }
  __syncthreads();
  if (warp == 0) {
    b = lane < nw ? Best{sv[lane], si[lane]} : Best{-INFINITY, V};
    for (int o = 16; o > 0; o >>= 1) b = better(b, Best{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)});
    // all -inf: the first index, as the CPU's scan (b.i is then the smallest index seen, 0)
    if (lane == 0) out[blockIdx.x] = snan ? -1 : (b.i < V ? b.i : 0);
  }
}

}  // namespace

void argmax_rows(int32_t* out, const float* x, int N, int V) {
  Op op("argmax_rows");
  if (N <= 0 || V <= 0) return;
  launch_pdl(argmax_rows_kernel, dim3(static_cast<unsigned>(N)), dim3(kThreads), 0, op.s, out, x, V);
}

}  // namespace qt::cuda
