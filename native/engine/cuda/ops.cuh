// The CUDA ops (one file per op family, like engine/cpu). Signatures and semantics are the backend table's
// (backend.h), checked against the CPU ops by native/gpu/gpu_check. backend_cuda.cu fills the `cuda` table.
#pragma once

#include "backend.h"
#include "common.cuh"
#include "lora_kernels.h"

namespace qt::cuda {

// ---- fast-path switches (context.cu; tools.h set_path/active_paths; defaults from the environment) ----------
struct Paths {
  // QT_CUDA_ATTN=tc16|tc|simt: tensor-core flash attention for bf16/fp16 compute on sm_80+ with the forward's products on
  // fp16 operands (tc16, run 3), or on bf16 ones like its backward (tc, run 2); simt = the fp32 SIMT kernels
  enum Attn { kAttnSimt = 0, kAttnTc = 1, kAttnTc16 = 2 };
  int attn = kAttnTc16;
  int attn_fwd_mt = 2;      // QT_CUDA_ATTN_FWD_MT=2|1: 16-row m-tiles per warp of the tensor-core forward (attention_tc.h)
  bool attn_ds = true;      // QT_CUDA_ATTN_DS=1|0: the tensor-core backward (Tq == Tk <= kAttnDsMaxT, 1024) with the dk/dv pass
                            // storing dS in bf16 and dq multiplying it (attn_dq_ds_tc: one product per tile instead of
                            // recomputing S, P, dP); longer sequences recompute (the tiles grow with T^2)
  int attn_split = -1;      // QT_CUDA_ATTN_SPLIT=auto|1|0: the tensor-core dk/dv pass with a block per query head and a sum
                            // of per-head partials (run 11; auto: when a block per KV head would leave < 2 blocks per SM)
  int gemv = 7;             // QT_CUDA_GEMV=7|6|4|3|1|0: fused NF4 dequant-GEMV for N <= 4 rows (decode): 4 = run 3's kernel
                            // with one row of x staged in shared memory and 1-2 rows per warp (run 4; N > 1 and rows
                            // too long for shared memory take 3), 6 = 4 with its table offsets formed 4 codes at a time
                            // (run 6; the same bits), 7 = 6 reading a code byte's two values from an fp16 pair table
                            // for 16-bit compute (run 8; fp32 compute takes 6), 3 = warp-per-rows kernel (run 3), 1 =
                            // run 2's block kernel, 0 = off (dequantize + GEMM)
  int gemv_rows = 0;        // QT_CUDA_GEMV_ROWS=1|2: rows per warp of gemv 4 / 6 / 7 (0: by the weight's rows)
  // QT_CUDA_DEQUANT=auto|vec2|vec|simple: NF4 dequantization: vec = 16-byte loads and stores (run 2), vec2 = coalesced
  // 512-byte warp stores for 16-bit outputs (run 3), auto = vec2 or vec, whichever the first large 16-bit dequantization
  // on the device times faster (fp32 outputs: vec); simple = a byte per thread. All give the same bits.
  enum Dequant { kDqAuto = 0, kDqSimple = 1, kDqVec = 2, kDqVec2 = 3 };
  int dequant = kDqAuto;
  // QT_CUDA_LORA=tf32|cublas|fused: LoRA through the masked copy + cuBLAS, its GEMMs on TF32 tensor cores when the model
  // computes in bf16/fp16 and in exact fp32 when it computes in fp32 (tf32, the default; with bf16/fp16 compute on sm_80+
  // and R <= 64 the forward's u = dropout(x) A^T is lora_xa_tc: mask inline, hi/lo bf16 tensor cores, no masked copy);
  // the same with exact fp32 GEMMs whatever the compute dtype (cublas, run 1's way); or the dropout mask inside the fused
  // SIMT kernels (lora_kernels.h) with exact fp32 GEMMs for the rest (fused; slower than cuBLAS in run 2, BENCHMARKS.md v2)
  enum Lora { kLoraTf32 = 0, kLoraCublas = 1, kLoraFused = 2 };
  int lora = kLoraTf32;
  bool xcache = true;       // QT_CUDA_XCACHE=1|0: matmuls on the same input reuse its bf16 copy (common.cuh)
  bool decode = true;       // QT_CUDA_DECODE=1|0: single-query attention split over keys, RMSNorm (any rows, run 17) with a
                            // block per row and the row in registers (decode_kernels.h; run 3)
  int pdl = 2;              // QT_CUDA_PDL=2|1|0: the decode path's kernels (NF4 GEMV, RMSNorm rows, RoPE, decode attention,
                            // SwiGLU, greedy argmax) with programmatic dependent launch on sm_90+ (launch_pdl); 2: the
                            // NF4 GEMV lets the next kernel launch only as its blocks exit (run 8: 250 tokens/s against
                            // 246.6 when it lets it launch at once, 1, run 7's way); 0: off
};
const Paths& paths();

/** kernel<<<grid, block, smem, s>>>(args...), allowed to start while the previous kernel in the stream finishes
 *  (programmatic dependent launch) when paths().pdl and the device is sm_90+: its launch and its blocks' start overlap
 *  that kernel's last blocks instead of following them. The kernel must begin with kern::grid_dep_wait() (or
 *  grid_dep_begin()) before touching memory other kernels use. Errors as a launch (QT_LAUNCH_CHECK's). */
bool pdl_enabled();  // paths().pdl on an sm_90+ device
template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  QT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...));
}

// context.cu: device and memory
void set_device(int index);
void* alloc(size_t bytes);
void free(void* ptr);
void upload(void* dst, const void* host_src, size_t bytes);
void download(void* host_dst, const void* src, size_t bytes);
void copy(void* dst, const void* src, size_t bytes);
void zero(void* dst, size_t bytes);
void memory_info(uint64_t* free_bytes, uint64_t* total_bytes);
bool native_bf16();
void list_devices(std::vector<DeviceInfo>& out);

void embedding_forward(float* out, const int32_t* ids, const Weight& wte, int N, int C);
void embedding_backward(float* dwte, const float* dout, const int32_t* ids, int N, int C);

void neftune_forward(float* x, const int32_t* lengths, float alpha, uint64_t seed, int B, int T, int C);

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);
void add_rmsnorm_forward(float* x_out, float* out, float* rstd, const float* a, const float* b, const float* weight, int N,
                         int C, float eps);

void rope_forward(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0);
void rope_backward(float* dinp, const float* dout, const float* inv_freq, int B, int T, int H, int HS, int pos0);
void rope_forward_qk(float* q, float* k, const float* inv_freq, int B, int T, int NH, int NKV, int HS, int pos0);

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* lengths,
                       int B, int Tq, int Tk, int NH, int NKV, int HS, DType compute);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const int32_t* lengths, int B, int Tq,
                        int Tk, int NH, int NKV, int HS, DType compute);

void swiglu_forward(float* out, const float* gate, const float* up, size_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n);

void matmul_forward(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC);
void matmul_forward_many(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases, int count,
                         int N, int C);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const Weight& w,
                     int N, int C, int OC);

bool keep_weights(void* mem, size_t bytes);
void matmul_forward_t(void* out, DType out_t, const void* inp, DType inp_t, const Weight& w, int N, int C, int OC);
void matmul_backward_t(void* dinp, DType dinp_t, bool accumulate, const void* dout, DType dout_t, const Weight& w, int N,
                       int C, int OC);
void swiglu_forward_bf16(uint16_t* out, const uint16_t* gate, const uint16_t* up, size_t n);
void swiglu_backward_bf16(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate, const uint16_t* up,
                          size_t n);

void dequantize(float* out, const Weight& w);
void nf4_quantize(uint8_t* codes, float* absmax, const void* src, DType src_dtype, int64_t n);
void nf4_double_quant(uint8_t* absmax_q, float* absmax_scale, const float* absmax, float offset, int64_t nb);

void lora_forward(float* out, float* u, float* scratch, const float* inp, const float* A, const float* Bw, float scale,
                  float dropout, uint64_t seed, int N, int C, int OC, int R, DType compute);
void lora_backward(float* dinp, float* dA, float* dB, float* scratch, const float* dout, const float* inp,
                   const float* u, const float* A, const float* Bw, float scale, float dropout, uint64_t seed, int N,
                   int C, int OC, int R, DType compute);

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int N, int V);
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, float dloss, int N, int V);
void cross_entropy_fused(float* losses, float* dlogits, const float* logits, const int32_t* targets, float dloss, int N,
                         int V);
void argmax_rows(int32_t* out, const float* x, int N, int V);

void add(float* out, const float* a, const float* b, size_t n);
void to_bf16(uint16_t* out, const float* in, size_t n);
void from_bf16(float* out, const uint16_t* in, size_t n);
void scale(float* x, float s, size_t n);
double sum_squares(const float* x, size_t n);

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int64_t t);

// ---- helpers shared between the op files (enqueue on stream s; no Op of their own) -------------------------

/** The NF4 code table and bnb's dynamic map in this device's constant memory (nf4.cu; once per device). */
void nf4_init_constants();
/** QT_CUDA_DEQUANT=auto's measurement so far: "" before it, else "(vec2: vec 41.2 us, vec2 22.0 us for 58720256 weights)". */
std::string dequant_auto_choice();
/** out[n] (type out_t: F32 | BF16 | F16) = the weight's values (any Weight dtype), exactly as dequantize. */
void dequantize_to(void* out, DType out_t, const Weight& w, cudaStream_t s);
/** out[N, OC] = inp[N, C] @ w^T (+ bias) straight from the NF4 codes, for N <= 4 rows (decode); returns false
 *  (nothing enqueued) when the weight or shape does not qualify or the GEMV path is switched off (nf4.cu). */
bool nf4_gemv_applies(const Weight& w, const float* inp, int N, int C, int OC);
bool nf4_gemv(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC, cudaStream_t s);
// One launch of nf4_gemv4 for up to 3 NF4 weights sharing one row of input (outs[i] = inp @ ws[i]^T + biases[i]);
// false (nothing launched) when the GEMV path or a weight does not allow it (nf4_gemv_many_applies).
bool nf4_gemv_many_applies(const float* inp, const Weight* const* ws, int count, int C);
bool nf4_gemv_many(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases, int count, int C,
                   cudaStream_t s);
/** The fused LoRA kernels (lora.cu): whether they apply (switch on, 1 <= R <= 64), the dA row slices for N rows,
 *  u = dropout(x) A^T, and dA += du^T dropout(x) (partials into a.part [S, R, C], then summed) with, when dx,
 *  dinp += dropout'(du A). */
bool lora_fused_applies(int N, int C, int R);
int lora_da_slices(int N);
void lora_xa_launch(const kern::LoraArgs& a, cudaStream_t s);
void lora_da_dx_launch(const kern::LoraArgs& a, bool dx, cudaStream_t s);
/** u = dropout(x) A^T on bf16 tensor cores with hi/lo-split operands (lora_xa_tc, lora.cu): whether it applies (sm_80+,
 *  1 <= R <= 64), the bytes of partial sums it needs (0 when C is not sliced; at most N * C floats, since the slices
 *  are at most C / 128 and R <= 64), and the launch (a.x, a.A, a.u, the dropout and the dims set as lora_args does;
 *  part: lora_xa_tc_part_bytes of scratch, or null when that is 0). */
bool lora_xa_tc_applies(int N, int C, int R);
size_t lora_xa_tc_part_bytes(int N, int C, int R);
void lora_xa_tc_launch(kern::LoraArgs a, float* part, cudaStream_t s);
/** out[n] (BF16 | F16 | F32) = in[n] fp32, rounded to nearest even. */
void convert_from_f32(void* out, DType out_t, const float* in, size_t n, cudaStream_t s);
/** out = (rng_mask_uniform(seed, i) >= p ? in * 1/(1-p) : 0), the LoRA dropout mask (elementwise.cu). */
void dropout_apply(float* out, const float* in, float p, uint64_t seed, size_t n, cudaStream_t s);
/** dinp += (rng_mask_uniform(seed, i) >= p ? g * 1/(1-p) : 0) (p = 0: dinp += g). */
void dropout_backward_add(float* dinp, const float* g, float p, uint64_t seed, size_t n, cudaStream_t s);
/** out[n, o] += bias[o] for N rows of OC. */
void bias_add(float* out, const float* bias, int N, int OC, cudaStream_t s);
/** out = a + b elementwise (the add op's kernel, enqueued without an Op: add_rmsnorm_forward's fallback). */
void add_launch(float* out, const float* a, const float* b, size_t n, cudaStream_t s);
/** dbias[o] += sum_n dout[n, o] (serial over n per column: deterministic). */
void bias_backward(float* dbias, const float* dout, int N, int OC, cudaStream_t s);

}  // namespace qt::cuda
