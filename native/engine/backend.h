// The backend table (ggml's ggml_backend_i): every op the model, trainer and generator need, as plain
// function pointers. engine/cpu provides the reference `cpu` table; engine/cuda provides `cuda` with the
// same ops and the same semantics (checked op by op against the CPU within tolerance). model.cpp,
// trainer.cpp and generate.cpp reach the math only through this table.
//
// Conventions (llm.c):
//   - arguments: outputs first, then inputs, then dims; gradients carry a `d` prefix;
//   - every pointer is device memory of the backend (host memory for cpu), fp32 unless typed otherwise;
//   - backward ops ADD into their gradient outputs (dinp += ...); callers zero them first (`zero`);
//   - forward ops overwrite their outputs, except lora_forward which adds its delta into `out`;
//   - ops must be deterministic: the same inputs give bit-identical outputs (resume == not stopping).
//
// Dims legend: B batch rows, T time (padded length), N = B*T rows, C hidden, NH query heads, NKV key/value
// heads, HS head size, FF intermediate, V vocab, R LoRA rank, OC output features.
// Row layout: token n = b*T + t; q [N, NH*HS] = [B, T, NH, HS]; k/v [B, Tk, NKV, HS].
// Padding is on the right: row b holds lengths[b] real tokens, then padding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtype.h"

namespace qt {

struct DeviceInfo;

/** A frozen base weight [rows, cols] (row-major, PyTorch's [out, in]) on the backend's device. */
struct Weight {
  DType dtype = DType::F32;           // F32 | F16 | BF16 (dense) or NF4
  DType compute = DType::F32;         // GEMM operand type (CUDA: BF16, or F16 where bf16 is unsupported, or F32);
                                      // the CPU always multiplies in fp32 and ignores it
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;         // dense values, or NF4 codes [(rows*cols+1)/2] (even element = high nibble)
  // NF4 statistics (ENGINE_FACTS §4): block b of 64 elements has absmax
  //   double_quant ? dynamic_map[absmax_q[b]] * absmax_scale[b / 256] + absmax_offset : absmax[b]
  bool double_quant = false;
  const float* absmax = nullptr;       // [nblocks]
  const uint8_t* absmax_q = nullptr;   // [nblocks]
  const float* absmax_scale = nullptr; // [ceil(nblocks / 256)]
  float absmax_offset = 0;
};

struct Backend {
  const char* name;  // "cpu" | "cuda"

  // ---- device and memory --------------------------------------------------------------------------
  // Makes device `index` current for the calling thread (cudaSetDevice); every public engine call that
  // works on a model calls it first (bind_device in model.h). No-op on the CPU.
  void (*set_device)(int index);
  void* (*alloc)(size_t bytes);                                   // throws qt::Error(OutOfMemory)
  void (*free)(void* ptr);                                        // any thread (destructors): free on the allocation's device
  void (*upload)(void* dst, const void* host_src, size_t bytes);  // host -> device
  void (*download)(void* host_dst, const void* src, size_t bytes);// device -> host (synchronises)
  void (*copy)(void* dst, const void* src, size_t bytes);         // device -> device
  void (*zero)(void* dst, size_t bytes);
  void (*memory_info)(uint64_t* free_bytes, uint64_t* total_bytes);
  bool (*native_bf16)();                                          // current device multiplies bf16 (CUDA sm_80+); CPU: false

  // ---- embedding (cpu/embedding.cpp) --------------------------------------------------------------
  // out[n,:] = wte[ids[n],:] as fp32; ids must be < V (checked by the caller).
  void (*embedding_forward)(float* out, const int32_t* ids, const Weight& wte, int N, int C);
  // dwte[ids[n],:] += dout[n,:]; dwte fp32 [V, C]. (Unused in training: embeddings are frozen.)
  void (*embedding_backward)(float* dwte, const float* dout, const int32_t* ids, int N, int C);

  // ---- NEFTune (cpu/neftune.cpp): x[b,t,:] += U(-1,1) * alpha / sqrt(lengths[b] * C) for t < lengths[b] ----
  // Noise element i = (b*T + t)*C + c is rng_uniform(seed, i) (rng.h), so every backend draws the same noise.
  void (*neftune_forward)(float* x, const int32_t* lengths, float alpha, uint64_t seed, int B, int T, int C);

  // ---- RMSNorm (cpu/rmsnorm.cpp) -----------------------------------------------------------------
  // out = inp * rstd * weight, rstd[n] = 1/sqrt(mean(inp[n,:]^2) + eps)
  void (*rmsnorm_forward)(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
  // dinp += ..., dweight += ... (dweight may be null)
  void (*rmsnorm_backward)(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                           const float* rstd, int N, int C);
  // A residual add and the RMSNorm that follows it, as one op (decode: one launch instead of two):
  // x_out = a + b (x_out may alias a or b), then out, rstd = rmsnorm_forward(x_out). Bit-identical to add followed by
  // rmsnorm_forward on the same backend. out and rstd overlap none of x_out, a, b.
  void (*add_rmsnorm_forward)(float* x_out, float* out, float* rstd, const float* a, const float* b, const float* weight,
                              int N, int C, float eps);

  // ---- RoPE (cpu/rope.cpp), HF rotate_half layout, position = pos0 + t; out may alias inp ----------
  // x [B, T, H, HS]; inv_freq [HS/2] (with llama3/linear scaling already applied, see rope_inv_freq)
  void (*rope_forward)(float* out, const float* inp, const float* inv_freq, int B, int T, int H, int HS, int pos0);
  // dinp = R^T dout: OVERWRITES dinp (not +=) and may run in place (dinp == dout)
  void (*rope_backward)(float* dinp, const float* dout, const float* inv_freq, int B, int T, int H, int HS, int pos0);
  // The queries' and the keys' rotation as one op, in place: q [B, T, NH, HS], k [B, T, NKV, HS] (k may be a KV-cache
  // slot). Bit-identical to rope_forward(q, q, ..., NH, ...) then rope_forward(k, k, ..., NKV, ...); q and k do not overlap.
  void (*rope_forward_qk)(float* q, float* k, const float* inv_freq, int B, int T, int NH, int NKV, int HS, int pos0);

  // ---- attention (cpu/attention.cpp): causal, GQA (head h uses kv head h / (NH/NKV)), scale 1/sqrt(HS) --
  // q [B,Tq,NH,HS], k/v [B,Tk,NKV,HS]; query i sits at position Tk - Tq + i and sees keys j <= that position
  // with j < lengths[b] (lengths may be null = all). out [B,Tq,NH,HS]; lse [B,NH,Tq] = log-sum-exp of the
  // scaled scores (FlashAttention's statistic; backward recomputes the probabilities from it).
  // `compute` is the model's GEMM operand type (Model::compute): F32 asks for fp32 math; BF16/F16 allow the
  // products on bf16 operands with fp32 accumulation (CUDA's tensor-core path on sm_80+). The CPU ignores it.
  void (*attention_forward)(float* out, float* lse, const float* q, const float* k, const float* v,
                            const int32_t* lengths, int B, int Tq, int Tk, int NH, int NKV, int HS, DType compute);
  // dq, dk, dv += ...
  void (*attention_backward)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                             const float* v, const float* out, const float* lse, const int32_t* lengths, int B,
                             int Tq, int Tk, int NH, int NKV, int HS, DType compute);

  // ---- SwiGLU (cpu/swiglu.cpp): out = silu(gate) * up, elementwise over n -------------------------
  void (*swiglu_forward)(float* out, const float* gate, const float* up, size_t n);
  void (*swiglu_backward)(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n);

  // ---- matmul (cpu/matmul.cpp): out[N,OC] = inp[N,C] @ w^T + bias (bias may be null) ---------------
  // w may be any Weight dtype (NF4 and 16-bit weights are dequantized to fp32 first, as bitsandbytes does).
  void (*matmul_forward)(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC);
  // The products of one input with `count` weights (a layer's q/k/v, its gate/up): outs[i][N, ws[i]->rows] =
  // inp @ ws[i]^T + biases[i] (biases[i] may be null); the same results as count matmul_forward calls in order. The CUDA
  // backend runs a decode step's (N = 1, NF4) as one GEMV launch.
  void (*matmul_forward_many)(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases,
                              int count, int N, int C);
  // dinp += dout @ w; dweight += dout^T @ inp (only for F32 weights; may be null); dbias += sum_n dout (may be null)
  void (*matmul_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const Weight& w, int N, int C, int OC);
  // Converted-weight reuse (gradient checkpointing: a layer's recomputation and then its backward multiply the same
  // frozen weights, and a GPU converts an NF4 weight into the compute dtype for each product). keep_weights(mem, bytes):
  // until the next call, matmul_forward leaves the converted copy of each weight it multiplies in mem while there is
  // room (up to bytes, in call order), and matmul_forward / matmul_backward on a weight kept there use that copy
  // instead of converting it again. A call with mem forgets the copies kept so far (one set per device: another
  // thread's set too); mem == nullptr stops the calling thread's keeping (if it keeps) and changes nothing else. Only
  // the keeping thread's matmuls keep or use copies. Results are bit-identical either way (a copy holds exactly what
  // the op would convert). Returns whether the backend keeps copies at all (CPU: false; it converts nothing).
  bool (*keep_weights)(void* mem, size_t bytes);

  // ---- bf16 activations (the MLP of a model computing in bf16 without a LoRA on gate/up/down: model.cpp) ----------
  // As matmul_forward / matmul_backward (no bias, no weight gradient) with each activation stored as `*_t` says: F32,
  // or BF16 (uint16_t, rounded to nearest even from the fp32 accumulation). The GEMM's own operands are what
  // matmul_forward's would be (a BF16 input is used as is). matmul_backward_t ADDS into an F32 dinp when accumulate,
  // else overwrites it (no zeroing first); a BF16 dinp is always overwritten (accumulate must be false).
  // The CUDA backend needs w.compute == BF16 when any activation is BF16.
  void (*matmul_forward_t)(void* out, DType out_t, const void* inp, DType inp_t, const Weight& w, int N, int C, int OC);
  void (*matmul_backward_t)(void* dinp, DType dinp_t, bool accumulate, const void* dout, DType dout_t, const Weight& w,
                            int N, int C, int OC);
  // swiglu_forward / swiglu_backward on bf16 arrays: inputs widened exactly, math in fp32, outputs rounded once to bf16.
  // swiglu_backward_bf16 OVERWRITES dgate and dup (no zeroing first).
  void (*swiglu_forward_bf16)(uint16_t* out, const uint16_t* gate, const uint16_t* up, size_t n);
  void (*swiglu_backward_bf16)(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate,
                               const uint16_t* up, size_t n);

  // ---- NF4 (cpu/nf4_dequant.cpp): out[rows*cols] = fp32 values of any Weight ------------------------
  void (*dequantize)(float* out, const Weight& w);
  // ---- NF4 quantization at load time (nf4.cpp on the CPU; ENGINE_FACTS §4) ---------------------------
  // codes [(n+1)/2], absmax [ceil(n/64)] of the n dense values src (F32 | F16 | BF16, on the device)
  void (*nf4_quantize)(uint8_t* codes, float* absmax, const void* src, DType src_dtype, int64_t n);
  // double quantization of absmax [nb] around offset (their mean, nf4_absmax_mean on the host):
  // absmax_q [nb] dynamic-map codes, absmax_scale [ceil(nb/256)]
  void (*nf4_double_quant)(uint8_t* absmax_q, float* absmax_scale, const float* absmax, float offset, int64_t nb);

  // ---- LoRA (cpu/lora.cpp): out += scale * (dropout(inp) @ A^T) @ B^T ------------------------------
  // A [R, C], Bw [OC, R]; u [N, R] (saved for backward) = dropout(inp) @ A^T; dropout keeps element i when
  // rng_mask_uniform(seed, i) >= p and scales it by 1/(1-p) (p = 0: identity). scratch: N*C floats.
  // `compute` is the model's compute dtype (Model::compute): F32 asks for exact fp32 GEMMs; BF16/F16 allow TF32
  // tensor-core products on the fp32 operands (CUDA's default; fp32 storage and accumulation). The CPU ignores it.
  void (*lora_forward)(float* out, float* u, float* scratch, const float* inp, const float* A, const float* Bw,
                       float scale, float dropout, uint64_t seed, int N, int C, int OC, int R, DType compute);
  // dinp += ..., dA += ..., dB += ... (dinp may be null); scratch: N*C + N*R floats
  void (*lora_backward)(float* dinp, float* dA, float* dB, float* scratch, const float* dout, const float* inp,
                        const float* u, const float* A, const float* Bw, float scale, float dropout, uint64_t seed,
                        int N, int C, int OC, int R, DType compute);

  // ---- cross-entropy (cpu/cross_entropy.cpp); targets < 0 are not counted ---------------------------
  // losses[n] = logsumexp(logits[n,:]) - logits[n, targets[n]]  (0 where targets[n] < 0)
  void (*cross_entropy_forward)(float* losses, const float* logits, const int32_t* targets, int N, int V);
  // dlogits[n,:] = dloss * (softmax(logits[n,:]) - onehot(targets[n])), 0 where targets[n] < 0.
  // OVERWRITES dlogits (not +=), and may be called in place (dlogits == logits).
  void (*cross_entropy_backward)(float* dlogits, const float* logits, const int32_t* targets, float dloss, int N, int V);
  // Both at once (training): losses as cross_entropy_forward, then dlogits as cross_entropy_backward (may be in place).
  // The GPU reads the logits twice instead of five times (one pass for the max and the sum, one for the gradient).
  void (*cross_entropy_fused)(float* losses, float* dlogits, const float* logits, const int32_t* targets, float dloss,
                              int N, int V);

  // ---- greedy decoding (cpu/argmax.cpp) ---------------------------------------------------------------
  // out[n] = the first index of row n's maximum (torch.argmax), or -1 when the row holds a NaN (the caller then
  // samples on the host). x [N, V]; out int32 [N].
  void (*argmax_rows)(int32_t* out, const float* x, int N, int V);

  // ---- elementwise and reductions (cpu/elementwise.cpp) -------------------------------------------
  void (*add)(float* out, const float* a, const float* b, size_t n);  // out = a + b (out may alias a or b)
  // bf16 storage of fp32 values (the activation checkpoints of gradient checkpointing): out[i] = in[i] rounded to
  // the nearest bf16 (ties to even, as dtype.h f32_to_bf16), and back (exact). out and in do not overlap.
  void (*to_bf16)(uint16_t* out, const float* in, size_t n);
  void (*from_bf16)(float* out, const uint16_t* in, size_t n);
  void (*scale)(float* x, float s, size_t n);                          // x *= s
  double (*sum_squares)(const float* x, size_t n);                     // sum x^2 (in double; synchronises)

  // ---- AdamW (cpu/adamw.cpp), torch.optim.AdamW semantics, t = 1-based step ---------------------------
  void (*adamw_update)(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, int64_t t);
};

/** The CPU reference backend. */
const Backend& cpu_backend();

/** The CUDA backend's table, or nullptr when this build has none (engine/cuda provides it when built with
 *  QT_HAVE_CUDA). Ops run on the calling thread's current CUDA device. */
const Backend* cuda_backend();

/** Hook for list_devices(): the CUDA backend appends one DeviceInfo per visible GPU (no-op without CUDA). */
void cuda_list_devices(std::vector<DeviceInfo>& out);

/** Selects the table for a device string: "cpu" or "cuda:<n>". InvalidArgument / Unsupported otherwise. */
const Backend& backend_for_device(const std::string& device, int* index);

/** RoPE inverse frequencies [HS/2] for a config (HF's rope init, incl. llama3 and linear scaling). */
struct ModelConfig;
std::vector<float> rope_inv_freq(const ModelConfig& config);

}  // namespace qt
