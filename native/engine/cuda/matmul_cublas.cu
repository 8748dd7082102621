// Linear layers and LoRA on the GPU through cuBLAS (cpu/matmul.cpp, cpu/lora.cpp).
//   matmul: the frozen weight is dequantized (NF4) or converted into the compute dtype in scratch memory, the
//   fp32 activations are rounded to the same dtype, and cublasGemmEx multiplies them with fp32 accumulation and
//   an fp32 result (bitsandbytes' QLoRA recipe: dequantize to bf16, then a normal GEMM). Compute dtype F32
//   (compute_dtype "fp32") runs plain fp32 GEMMs (no TF32), for checks against the CPU.
//   LoRA: A/B, the activations and every result stay fp32; the dropout mask is regenerated from its seed. When the
//   model computes in bf16/fp16 (QT_CUDA_LORA=tf32, the default), the forward's u = dropout(x) A^T is one kernel
//   (lora_xa_tc, lora_kernels.h; sm_80+, R <= 64) that reads x once, applies the mask inline and multiplies on bf16
//   tensor cores with every fp32 operand split into hi + lo bf16 terms (~2^-17 relative per product, finer than TF32);
//   its other GEMMs (skinny: N rows x C x R; out += scale u B^T and the backward's) run on TF32 tensor cores
//   (CUBLAS_COMPUTE_32F_FAST_TF32: operands rounded to a 10-bit mantissa, fp32 accumulation) after a masked copy of x
//   where one is needed: still finer than the bf16 operands of the base products beside them (PEFT runs the adapter in
//   fp32, Unsloth in bf16). Compute dtype F32, or QT_CUDA_LORA=cublas|fused, keeps exact fp32 GEMMs
//   (CUBLAS_COMPUTE_32F) after the masked copy (or the fused SIMT kernels), as the CPU checks need.
//   Decode (N <= 4 rows, NF4 weight): nf4_gemv multiplies straight from the codes in exact fp32 (no scratch copy),
//   whatever the compute dtype: at least as accurate as the bf16 GEMM (QT_CUDA_GEMV=0 turns it off).
//   Gradient checkpointing (keep_weights, backend.h): while a layer is recomputed, the converted copies go to memory the
//   trainer lent (not the workspace), and the layer's backward multiplies those copies instead of converting again.
// Row-major helpers over column-major cuBLAS: a row-major X[M, K] is the column-major X^T with ld = K.
// Deterministic: one handle per device on the device's stream, a fixed cuBLAS workspace, atomics not allowed
// (cuBLAS's default), so the same inputs give the same bits.
#include <cublas_v2.h>

#include "ops.cuh"

namespace qt::cuda {

namespace {

void blas_check(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  if (st == CUBLAS_STATUS_ALLOC_FAILED) QT_FAIL(ErrorCode::OutOfMemory, std::string("GPU out of memory in cuBLAS (") + what + ")");
  QT_FAIL(ErrorCode::Device, std::string("cuBLAS error ") + std::to_string(static_cast<int>(st)) + " in " + what);
}

constexpr size_t kBlasWorkspace = size_t{32} << 20;  // NVIDIA's recommendation for Hopper

cublasHandle_t handle(DeviceCtx& c) {
  if (!c.blas) {
    cublasHandle_t h = nullptr;
    blas_check(cublasCreate(&h), "cublasCreate");
    blas_check(cublasSetStream(h, c.stream), "cublasSetStream");
    blas_check(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");  // TF32 only where a GEMM asks (ct)
    void* ws = cuda::alloc(kBlasWorkspace);
    blas_check(cublasSetWorkspace(h, ws, kBlasWorkspace), "cublasSetWorkspace");
    c.blas = h;
    c.blas_ws = ws;
  }
  return static_cast<cublasHandle_t>(c.blas);
}

cudaDataType_t cuda_type(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : t == DType::F16 ? CUDA_R_16F : CUDA_R_32F;
}

size_t elt(DType t) { return t == DType::F32 ? 4 : 2; }

// ct: the products' precision. CUBLAS_COMPUTE_32F is exact fp32 for fp32 operands (and fp32 accumulation for 16-bit ones);
// CUBLAS_COMPUTE_32F_FAST_TF32 (fp32 operands only: the LoRA GEMMs) lets cuBLAS round them to TF32 for tensor cores.

// out[M, N] (type ot: fp32, or bf16 rounded from the fp32 accumulation) = alpha * A[M, K] @ B[N, K]^T + beta * out
// (A, B of type t; beta = 0: out is not read)
void gemm_nt(DeviceCtx& c, void* out, const void* A, const void* B, DType t, int M, int N, int K, float alpha, float beta,
             cublasComputeType_t ct = CUBLAS_COMPUTE_32F, DType ot = DType::F32) {
  blas_check(cublasGemmEx(handle(c), CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, B, cuda_type(t), K, A, cuda_type(t), K, &beta,
                          out, cuda_type(ot), N, ct, CUBLAS_GEMM_DEFAULT),
             "gemm_nt");
}

// out[M, N] = alpha * A[M, K] @ B[K, N] + beta * out
void gemm_nn(DeviceCtx& c, void* out, const void* A, const void* B, DType t, int M, int N, int K, float alpha, float beta,
             cublasComputeType_t ct = CUBLAS_COMPUTE_32F, DType ot = DType::F32) {
  blas_check(cublasGemmEx(handle(c), CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &alpha, B, cuda_type(t), N, A, cuda_type(t), K, &beta,
                          out, cuda_type(ot), N, ct, CUBLAS_GEMM_DEFAULT),
             "gemm_nn");
}

// out[M, N] = alpha * A[K, M]^T @ B[K, N] + beta * out
void gemm_tn(DeviceCtx& c, float* out, const void* A, const void* B, DType t, int M, int N, int K, float alpha, float beta,
             cublasComputeType_t ct = CUBLAS_COMPUTE_32F) {
  blas_check(cublasGemmEx(handle(c), CUBLAS_OP_N, CUBLAS_OP_T, N, M, K, &alpha, B, cuda_type(t), N, A, cuda_type(t), M, &beta,
                          out, CUDA_R_32F, N, ct, CUBLAS_GEMM_DEFAULT),
             "gemm_tn");
}

// ---- kept converted copies (keep_weights) ----

bool keeping(const DeviceCtx& c) { return c.keep_mem != nullptr && c.keep_owner == std::this_thread::get_id(); }

const void* kept_copy(const DeviceCtx& c, const Weight& w, DType t) {
  if (!keeping(c)) return nullptr;
  for (const auto& k : c.kept)
    if (k.data == w.data && k.dtype == w.dtype && k.compute == t && k.rows == w.rows && k.cols == w.cols) return k.copy;
  return nullptr;
}

// Room for w's converted copy in the kept memory (then recorded as kept), or null when not keeping or out of room.
void* keep_slot(DeviceCtx& c, const Weight& w, DType t) {
  if (!keeping(c)) return nullptr;
  const size_t bytes = static_cast<size_t>(w.rows) * static_cast<size_t>(w.cols) * elt(t);
  const size_t off = (c.keep_used + 255) / 256 * 256;  // the alignment of the workspace copies (cuBLAS's choice of kernel)
  if (off + bytes > c.keep_bytes) return nullptr;
  void* p = c.keep_mem + off;
  c.keep_used = off + bytes;
  c.kept.push_back({w.data, w.dtype, t, w.rows, w.cols, p});
  return p;
}

// The weight in dtype t: the stored array when it already is, a kept copy, else a converted copy at `scratch` (or, when
// `keep` and keeping, in the kept memory).
const void* weight_as(DeviceCtx& c, const Weight& w, DType t, void* scratch, bool keep = false) {
  if (w.dtype == t) return w.data;
  if (const void* k = kept_copy(c, w, t)) return k;
  if (keep)
    if (void* slot = keep_slot(c, w, t)) scratch = slot;
  Section sec(c, "matmul.dequantize");
  dequantize_to(scratch, t, w, c.stream);
  return scratch;
}

// fp32 activations as a GEMM operand of type t: inp itself for fp32, else its rounded copy at dst. A copy at the start of
// the workspace (first) is remembered: the next matmul on the same input reuses it while no op wrote either (xcache).
const void* input_as(DeviceCtx& c, const float* inp, size_t n, DType t, char* dst, bool first) {
  if (t == DType::F32) return inp;
  const bool hit = paths().xcache && first && c.xconv_src == inp && c.xconv_n == n && c.xconv_t == t && c.xconv_seq == c.op_seq;
  if (!hit) {
    Section sec(c, "matmul.convert");
    convert_from_f32(dst, t, inp, n, c.stream);
    c.xconv_src = inp;
    c.xconv_n = n;
    c.xconv_t = t;
    c.xconv_seq = c.op_seq;
  }
  return dst;
}

void check_compute(const Weight& w) {
  if (w.compute != DType::F32 && w.compute != DType::BF16 && w.compute != DType::F16)
    QT_FAIL(ErrorCode::Internal, "matmul: compute dtype must be F32, BF16 or F16");
}

// The compute type of the LoRA GEMMs: TF32 for a model computing in bf16/fp16 on the tf32 path (the default), else exact
// fp32 (fp32 compute, which the checks against the CPU use; QT_CUDA_LORA=cublas|fused).
cublasComputeType_t lora_gemm_type(DType compute) {
  const bool tf32 = paths().lora == Paths::kLoraTf32 && (compute == DType::BF16 || compute == DType::F16);
  return tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

}  // namespace

void matmul_forward(float* out, const float* inp, const Weight& w, const float* bias, int N, int C, int OC) {
  // out [N, OC]; inp [N, C]; w [OC, C]; bias [OC] or null
  Op op("matmul_forward", /*keeps_inputs=*/true);
  check_compute(w);
  if (nf4_gemv_applies(w, inp, N, C, OC)) {  // decode: straight from the NF4 codes, exact fp32 products
    Section sec(op.c, "matmul.gemv");
    nf4_gemv(out, inp, w, bias, N, C, OC, op.s);
    note_write(op.c, out, static_cast<size_t>(N) * OC * sizeof(float));
    return;
  }
  const DType t = w.compute;
  Carve k(op.c);
  const size_t ox = k.add(t == DType::F32 ? 0 : static_cast<size_t>(N) * C * elt(t));  // first: kept for the next matmul
  const size_t ow = k.add(w.dtype == t ? 0 : static_cast<size_t>(OC) * C * elt(t));
  char* base = k.commit();
  if (t == DType::F32 && w.dtype != t) op.c.xconv_src = nullptr;  // the fp32 weight copy goes where a cached input was
  const void* W = weight_as(op.c, w, t, base + ow, /*keep=*/true);
  const void* X = input_as(op.c, inp, static_cast<size_t>(N) * C, t, base + ox, ox == 0);
  {
    Section sec(op.c, "matmul.gemm");
    gemm_nt(op.c, out, X, W, t, N, OC, C, 1.0f, 0.0f);
  }
  if (bias) bias_add(out, bias, N, OC, op.s);
  note_write(op.c, out, static_cast<size_t>(N) * OC * sizeof(float));
}

void matmul_forward_many(float* const* outs, const float* inp, const Weight* const* ws, const float* const* biases, int count,
                         int N, int C) {
  if (N == 1 && nf4_gemv_many_applies(inp, ws, count, C)) {  // decode: one GEMV launch for the weights sharing x
    Op op("matmul_forward", /*keeps_inputs=*/true);
    for (int i = 0; i < count; i++) check_compute(*ws[i]);
    Section sec(op.c, "matmul.gemv");
    nf4_gemv_many(outs, inp, ws, biases, count, C, op.s);
    for (int i = 0; i < count; i++) note_write(op.c, outs[i], static_cast<size_t>(ws[i]->rows) * sizeof(float));
    return;
  }
  for (int i = 0; i < count; i++) matmul_forward(outs[i], inp, *ws[i], biases[i], N, C, static_cast<int>(ws[i]->rows));
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const Weight& w,
                     int N, int C, int OC) {
  // dinp [N, C] += dout @ w; dweight [OC, C] += dout^T @ inp (F32 weights only); dbias [OC] += column sums of dout
  Op op("matmul_backward");
  check_compute(w);
  const DType t = w.compute;
  if (dinp) {
    Carve k(op.c);
    const size_t ow = k.add(w.dtype == t ? 0 : static_cast<size_t>(OC) * C * elt(t));
    const size_t od = k.add(t == DType::F32 ? 0 : static_cast<size_t>(N) * OC * elt(t));
    char* base = k.commit();
    const void* W = weight_as(op.c, w, t, base + ow);
    const void* G = dout;
    if (t != DType::F32) {
      Section sec(op.c, "matmul.convert");
      convert_from_f32(base + od, t, dout, static_cast<size_t>(N) * OC, op.s);
      G = base + od;
    }
    Section sec(op.c, "matmul.gemm");
    gemm_nn(op.c, dinp, G, W, t, N, C, OC, 1.0f, 1.0f);
  }
  if (dweight && w.dtype == DType::F32) gemm_tn(op.c, dweight, dout, inp, DType::F32, OC, C, N, 1.0f, 1.0f);
  if (dbias) bias_backward(dbias, dout, N, OC, op.s);
}

// ---- bf16 activations (backend.h matmul_forward_t / matmul_backward_t) ----

namespace {

void check_act_types(DType a, DType b, const Weight& w, const char* what) {
  for (DType t : {a, b})
    if (t != DType::F32 && t != DType::BF16)
      QT_FAIL(ErrorCode::Internal, std::string(what) + ": activations are F32 or BF16, not " + dtype_name(t));
  if ((a == DType::BF16 || b == DType::BF16) && w.compute != DType::BF16)
    QT_FAIL(ErrorCode::Internal, std::string(what) + ": bf16 activations need a weight computing in bf16");
}

}  // namespace

void matmul_forward_t(void* out, DType out_t, const void* inp, DType inp_t, const Weight& w, int N, int C, int OC) {
  check_compute(w);
  check_act_types(out_t, inp_t, w, "matmul_forward_t");
  if (out_t == DType::F32 && inp_t == DType::F32)
    return matmul_forward(static_cast<float*>(out), static_cast<const float*>(inp), w, nullptr, N, C, OC);
  Op op("matmul_forward_t", /*keeps_inputs=*/true);
  const DType t = w.compute;  // BF16
  Carve k(op.c);
  const size_t ox = k.add(inp_t == DType::F32 ? static_cast<size_t>(N) * C * elt(t) : 0);  // first: the xcache's place
  const size_t ow = k.add(w.dtype == t ? 0 : static_cast<size_t>(OC) * C * elt(t));
  char* base = k.commit();
  const void* W = weight_as(op.c, w, t, base + ow, /*keep=*/true);
  const void* X = inp_t == DType::F32 ? input_as(op.c, static_cast<const float*>(inp), static_cast<size_t>(N) * C, t, base + ox, ox == 0) : inp;
  {
    Section sec(op.c, "matmul.gemm");
    gemm_nt(op.c, out, X, W, t, N, OC, C, 1.0f, 0.0f, CUBLAS_COMPUTE_32F, out_t);
  }
  note_write(op.c, out, static_cast<size_t>(N) * OC * elt(out_t));
}

void matmul_backward_t(void* dinp, DType dinp_t, bool accumulate, const void* dout, DType dout_t, const Weight& w, int N,
                       int C, int OC) {
  check_compute(w);
  check_act_types(dinp_t, dout_t, w, "matmul_backward_t");
  if (dinp_t == DType::BF16 && accumulate) QT_FAIL(ErrorCode::Internal, "matmul_backward_t: a bf16 dinp cannot accumulate");
  if (dinp_t == DType::F32 && dout_t == DType::F32 && accumulate)
    return matmul_backward(static_cast<float*>(dinp), nullptr, nullptr, static_cast<const float*>(dout), nullptr, w, N, C, OC);
  Op op("matmul_backward_t");
  const DType t = w.compute;
  Carve k(op.c);
  const size_t ow = k.add(w.dtype == t ? 0 : static_cast<size_t>(OC) * C * elt(t));
  const size_t od = k.add(t != DType::F32 && dout_t == DType::F32 ? static_cast<size_t>(N) * OC * elt(t) : 0);
  char* base = k.commit();
  const void* W = weight_as(op.c, w, t, base + ow);
  const void* G = dout;
  if (t != DType::F32 && dout_t == DType::F32) {
    Section sec(op.c, "matmul.convert");
    convert_from_f32(base + od, t, static_cast<const float*>(dout), static_cast<size_t>(N) * OC, op.s);
    G = base + od;
  }
  Section sec(op.c, "matmul.gemm");
  gemm_nn(op.c, dinp, G, W, t, N, C, OC, 1.0f, accumulate ? 1.0f : 0.0f, CUBLAS_COMPUTE_32F, dinp_t);
}

bool keep_weights(void* mem, size_t bytes) {
  Op op("keep_weights", /*keeps_inputs=*/true);
  DeviceCtx& c = op.c;
  if (!mem && !keeping(c)) return true;  // another thread's set (or none) stays as it is
  c.kept.clear();
  c.keep_used = 0;
  c.keep_mem = nullptr;
  c.keep_bytes = 0;
  const uintptr_t a = reinterpret_cast<uintptr_t>(mem), a256 = (a + 255) / 256 * 256;
  if (mem && bytes > a256 - a) {
    c.keep_mem = reinterpret_cast<char*>(a256);
    c.keep_bytes = bytes - (a256 - a);
    c.keep_owner = std::this_thread::get_id();
  }
  return true;
}

void lora_forward(float* out, float* u, float* scratch, const float* inp, const float* A, const float* Bw, float scale,
                  float dropout, uint64_t seed, int N, int C, int OC, int R, DType compute) {
  // out [N, OC] +=; u [N, R]; scratch [N, C]; inp [N, C]; A [R, C]; Bw [OC, R]
  Op op("lora_forward", /*keeps_inputs=*/true);
  const cublasComputeType_t ct = lora_gemm_type(compute);
  note_write(op.c, out, static_cast<size_t>(N) * OC * sizeof(float));
  note_write(op.c, u, static_cast<size_t>(N) * R * sizeof(float));
  note_write(op.c, scratch, static_cast<size_t>(N) * C * sizeof(float));
  if (lora_fused_applies(N, C, R)) {  // u = dropout(x) A^T in one kernel (no masked copy), then out += scale u B^T
    kern::LoraArgs a = kern::lora_args(inp, A, dropout, seed, N, C, R);
    a.u = u;
    lora_xa_launch(a, op.s);
    gemm_nt(op.c, out, u, Bw, DType::F32, N, OC, R, scale, 1.0f, ct);
    return;
  }
  if (ct == CUBLAS_COMPUTE_32F_FAST_TF32 && lora_xa_tc_applies(N, C, R)) {
    // u = dropout(x) A^T on tensor cores, x read once (no masked copy); the partial sums of its slices of C in scratch
    // (workspace() would overwrite the cached bf16 copy of inp that the next matmul on it reuses: common.cuh's xconv)
    const size_t part = lora_xa_tc_part_bytes(N, C, R);
    if (part > static_cast<size_t>(N) * C * sizeof(float)) QT_FAIL(ErrorCode::Internal, "lora_forward: partial sums exceed scratch");
    kern::LoraArgs a = kern::lora_args(inp, A, dropout, seed, N, C, R);
    a.u = u;
    lora_xa_tc_launch(a, part ? scratch : nullptr, op.s);
    gemm_nt(op.c, out, u, Bw, DType::F32, N, OC, R, scale, 1.0f, ct);  // out += scale u B^T
    return;
  }
  float* xd = scratch;
  dropout_apply(xd, inp, dropout, seed, static_cast<size_t>(N) * C, op.s);
  gemm_nt(op.c, u, xd, A, DType::F32, N, R, C, 1.0f, 0.0f, ct);      // u = xd A^T
  gemm_nt(op.c, out, u, Bw, DType::F32, N, OC, R, scale, 1.0f, ct);  // out += scale u B^T
}

void lora_backward(float* dinp, float* dA, float* dB, float* scratch, const float* dout, const float* inp,
                   const float* u, const float* A, const float* Bw, float scale, float dropout, uint64_t seed, int N,
                   int C, int OC, int R, DType compute) {
  // dinp [N, C] += (may be null); dA [R, C] +=; dB [OC, R] +=; scratch [N*C + N*R]
  Op op("lora_backward");
  const cublasComputeType_t ct = lora_gemm_type(compute);
  float* xd = scratch;
  float* du = scratch + static_cast<size_t>(N) * C;
  gemm_tn(op.c, dB, dout, u, DType::F32, OC, R, N, scale, 1.0f, ct);  // dB += scale dout^T u
  gemm_nn(op.c, du, dout, Bw, DType::F32, N, R, OC, scale, 0.0f, ct); // du = scale dout B
  if (lora_fused_applies(N, C, R)) {  // dA and dinp with the mask drawn inside the kernels (no masked copy)
    kern::LoraArgs a = kern::lora_args(inp, A, dropout, seed, N, C, R);
    a.du = du;
    a.dA = dA;
    a.dinp = dinp;
    a.S = lora_da_slices(N);
    a.part = static_cast<float*>(workspace(op.c, static_cast<size_t>(a.S) * R * C * sizeof(float)));
    lora_da_dx_launch(a, dinp != nullptr, op.s);
    return;
  }
  dropout_apply(xd, inp, dropout, seed, static_cast<size_t>(N) * C, op.s);
  gemm_tn(op.c, dA, du, xd, DType::F32, R, C, N, 1.0f, 1.0f, ct);     // dA += du^T xd
  if (!dinp) return;
  gemm_nn(op.c, xd, du, A, DType::F32, N, C, R, 1.0f, 0.0f, ct);      // dxd = du A
  dropout_backward_add(dinp, xd, dropout, seed, static_cast<size_t>(N) * C, op.s);
}

}  // namespace qt::cuda
