// The CPU reference ops (one file per op family, forward and backward side by side). Signatures and
// semantics are those of the backend table (backend.h), which documents each op; cpu/backend_cpu.cpp
// fills the `cpu` table with these functions.
#pragma once

#include "backend.h"

namespace qt::cpu {

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

// `compute` is ignored: the CPU always computes in fp32.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* lengths,
                       int B, int Tq, int Tk, int NH, int NKV, int HS, DType compute = DType::F32);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const int32_t* lengths, int B, int Tq,
                        int Tk, int NH, int NKV, int HS, DType compute = DType::F32);

void swiglu_forward(float* out, const float* gate, const float* up, size_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n);

void matmul_forward(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC);
void matmul_forward_many(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases, int count,
                         int N, int C);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const Weight& w,
                     int N, int C, int OC);

// bf16 activations (backend.h matmul_forward_t ...): activations widened to fp32, the fp32 ops above, outputs rounded
void matmul_forward_t(void* out, DType out_t, const void* inp, DType inp_t, const Weight& w, int N, int C, int OC);
void matmul_backward_t(void* dinp, DType dinp_t, bool accumulate, const void* dout, DType dout_t, const Weight& w, int N,
                       int C, int OC);
void swiglu_forward_bf16(uint16_t* out, const uint16_t* gate, const uint16_t* up, size_t n);
void swiglu_backward_bf16(uint16_t* dgate, uint16_t* dup, const uint16_t* dout, const uint16_t* gate, const uint16_t* up,
                          size_t n);

void dequantize(float* out, const Weight& w);
/** out[0..count) = fp32 values of elements [start, start+count) of w (any dtype). */
void dequantize_range(float* out, const Weight& w, int64_t start, int64_t count);

// `compute` is ignored: the CPU always computes in fp32.
void lora_forward(float* out, float* u, float* scratch, const float* inp, const float* A, const float* Bw, float scale,
                  float dropout, uint64_t seed, int N, int C, int OC, int R, DType compute = DType::F32);
void lora_backward(float* dinp, float* dA, float* dB, float* scratch, const float* dout, const float* inp,
                   const float* u, const float* A, const float* Bw, float scale, float dropout, uint64_t seed, int N,
                   int C, int OC, int R, DType compute = DType::F32);

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

// fp32 GEMM helpers shared by matmul and lora: out[N,OC] (=, or += when accumulate) inp[N,C] @ w[OC,C]^T
void gemm_nt(float* out, const float* inp, const float* w, const float* bias, int N, int C, int OC, bool accumulate);
// dinp[N,C] += dout[N,OC] @ w[OC,C]
void gemm_nn_acc(float* dinp, const float* dout, const float* w, int N, int C, int OC);
// dw[OC,C] += dout[N,OC]^T @ inp[N,C]
void gemm_tn_acc(float* dw, const float* dout, const float* inp, int N, int C, int OC);

}  // namespace qt::cpu
