// gpu_check: the CUDA backend against the CPU reference (issue 5, part 4a/4c).
//   ops     every backend-table op on fresh random inputs, CPU vs CUDA, with the tolerance printed on each line:
//           overwritten outputs are poisoned with NaN first (an unwritten element fails), accumulating outputs
//           (dinp += ...) start from the same random values on both sides (never zeros);
//   nf4     quantization on the GPU gives the CPU's codes, absmax, double-quant codes and scales bit for bit,
//           and dequantization equals the ENGINE_FACTS §4 formula bit for bit;
//   model   tiny models loaded on both backends: identical quantized weights, logits (fp32 compute: tight;
//           bf16 compute: bf16 tolerance), the KV cache against full recomputation, greedy generation;
//   train   training steps CPU vs GPU, resume == not stopping on the GPU (bit for bit), determinism;
//   errors  device listing, a bad device, out-of-memory during training / loading / generation becoming
//           OutOfMemory with a plain message, after which the engine still works and no memory leaked.
// Usage: gpu_check [--json PATH] [--only ops,nf4,model,train,errors]. Exit status: number of failures (max 255).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "fixtures.h"
#include "gpu_common.h"
#include "inference.h"
#include "model.h"
#include "nf4.h"
#include "rng.h"
#include "tools.h"

using namespace qg;
using qt::DType;

namespace {

const qt::Backend& CPU = qt::cpu_backend();
const qt::Backend* GPUP = nullptr;
#define GPU (*GPUP)

std::vector<float> nans(size_t n) { return std::vector<float>(n, std::nanf("")); }

// The fast-path switches as the environment set them (tools.h set_path): checks flip them, then restore these.
const char* default_attn() {
  const char* e = std::getenv("QT_CUDA_ATTN");
  return e && std::strcmp(e, "simt") == 0 ? "simt" : e && std::strcmp(e, "tc") == 0 ? "tc" : "tc16";
}
const char* default_gemv() {
  const char* e = std::getenv("QT_CUDA_GEMV");
  for (const char* m : {"0", "1", "3", "4", "6"})
    if (e && std::strcmp(e, m) == 0) return m;
  return "7";
}
const char* default_dequant() {
  const char* e = std::getenv("QT_CUDA_DEQUANT");
  for (const char* v : {"simple", "vec", "vec2"})
    if (e && std::strcmp(e, v) == 0) return v;
  return "auto";
}
const char* default_decode() {
  const char* e = std::getenv("QT_CUDA_DECODE");
  return e && std::strcmp(e, "0") == 0 ? "0" : "1";
}
// The run-3 paths a model-level check goes through with the default switches, as fallback tags: decode steps
// "[gemv3] [decode]", bf16 compute also the fp16 attention forward "[fp16 tc16]".
std::string run3_tags(bool bf16, bool decode = true) {
  std::string t;
  if (bf16 && std::strcmp(default_attn(), "tc16") == 0) t += " [fp16 tc16]";
  if (!decode) return t;
  if (std::strcmp(default_gemv(), "3") == 0) t += " [gemv3]";
  if (std::strcmp(default_gemv(), "4") == 0) t += " [gemv4] [gemv3]";  // N > 1 and long rows take gemv3
  if (std::strcmp(default_gemv(), "6") == 0) t += " [gemv6] [gemv3]";
  if (std::strcmp(default_gemv(), "7") == 0) t += " [gemv7] [gemv3]";
  if (std::strcmp(default_decode(), "1") == 0) t += " [decode]";
  return t;
}
void restore_paths() {
  qt::cuda::set_path("attn", default_attn());
  const char* sp = std::getenv("QT_CUDA_ATTN_SPLIT");
  qt::cuda::set_path("attn_split", sp && (std::strcmp(sp, "0") == 0 || std::strcmp(sp, "1") == 0) ? sp : "auto");
  const char* dsv = std::getenv("QT_CUDA_ATTN_DS");
  qt::cuda::set_path("attn_ds", dsv && std::strcmp(dsv, "0") == 0 ? "0" : "1");
  const char* mt = std::getenv("QT_CUDA_ATTN_FWD_MT");
  qt::cuda::set_path("attn_fwd_mt", mt && std::strcmp(mt, "1") == 0 ? "1" : "2");
  qt::cuda::set_path("gemv", default_gemv());
  const char* pd = std::getenv("QT_CUDA_PDL");
  qt::cuda::set_path("pdl", pd && (std::strcmp(pd, "0") == 0 || std::strcmp(pd, "1") == 0) ? pd : "2");
  const char* gr = std::getenv("QT_CUDA_GEMV_ROWS");
  qt::cuda::set_path("gemv_rows", gr ? gr : "0");
  qt::cuda::set_path("dequant", default_dequant());
  const char* e = std::getenv("QT_CUDA_LORA");
  qt::cuda::set_path("lora", e && (std::strcmp(e, "fused") == 0 || std::strcmp(e, "cublas") == 0) ? e : "tf32");  // default tf32
  const char* x = std::getenv("QT_CUDA_XCACHE");
  qt::cuda::set_path("xcache", x && std::strcmp(x, "0") == 0 ? "0" : "1");
  qt::cuda::set_path("decode", default_decode());
}

// Runs fn with the profiler on and says whether a mark (op or section) of that name was recorded: proves which path ran.
template <class F>
bool ran_section(const char* name, F&& fn) {
  qt::cuda::profile_begin();
  fn();
  bool seen = false;
  for (const auto& e : qt::cuda::profile_end()) seen = seen || e.name == name;
  return seen;
}

void cmp(Report& R, const std::string& g, const std::string& name, const std::vector<float>& ref, const std::vector<float>& got,
         double tol) {
  const double e = rel_l2(ref, got);
  R.add(g, name, "rel_l2", e, tol, e <= tol && all_finite(got), "max|d| " + fmt(max_abs_diff(ref, got)));
}

void exact(Report& R, const std::string& g, const std::string& name, const std::vector<float>& ref, const std::vector<float>& got) {
  const bool eq = bit_equal(ref, got);
  R.add(g, name, "max|d|", max_abs_diff(ref, got), 0, eq && all_finite(got), eq ? "bit-identical" : "NOT bit-identical");
}

// lse rows with nothing visible are -inf on both sides; compare the rest
void cmp_lse(Report& R, const std::string& g, const std::string& name, std::vector<float> ref, std::vector<float> got, double tol) {
  bool same_inf = ref.size() == got.size();
  for (size_t i = 0; same_inf && i < ref.size(); i++) {
    const bool a = std::isinf(ref[i]) && ref[i] < 0, b = std::isinf(got[i]) && got[i] < 0;
    if (a != b) same_inf = false;
    if (a && b) ref[i] = got[i] = 0;
  }
  const double e = same_inf ? rel_l2(ref, got) : 1e30;
  R.add(g, name, "rel_l2", e, tol, same_inf && e <= tol, same_inf ? "" : "-inf rows differ");
}

// A frozen weight on both sides: host arrays for the CPU op, device copies for the CUDA op.
struct WeightPair {
  qt::Weight cpu, gpu;
  std::vector<uint8_t> host_bytes;  // dense values or NF4 codes
  qt::Nf4Host q;
  std::vector<DevBuf> dev;

  WeightPair(const std::vector<float>& w, int rows, int cols, DType dtype, bool dq) {
    cpu.rows = gpu.rows = rows;
    cpu.cols = gpu.cols = cols;
    cpu.dtype = gpu.dtype = dtype;
    if (dtype == DType::NF4) {
      q = qt::nf4_quantize(w.data(), rows, cols, dq);
      cpu.data = q.codes.data();
      cpu.double_quant = gpu.double_quant = dq;
      dev.emplace_back(GPU, q.codes);
      gpu.data = dev.back().ptr();
      if (dq) {
        cpu.absmax_q = q.absmax_q.data();
        cpu.absmax_scale = q.absmax_scale.data();
        cpu.absmax_offset = gpu.absmax_offset = q.absmax_offset;
        dev.emplace_back(GPU, q.absmax_q);
        gpu.absmax_q = dev.back().as<uint8_t>();
        dev.emplace_back(GPU, q.absmax_scale);
        gpu.absmax_scale = dev.back().as<float>();
      } else {
        cpu.absmax = q.absmax.data();
        dev.emplace_back(GPU, q.absmax);
        gpu.absmax = dev.back().as<float>();
      }
      return;
    }
    const size_t es = qt::dtype_size(dtype);
    host_bytes.resize(w.size() * es);
    for (size_t i = 0; i < w.size(); i++) {
      if (dtype == DType::F32) std::memcpy(&host_bytes[i * 4], &w[i], 4);
      else {
        const uint16_t h = dtype == DType::BF16 ? qt::f32_to_bf16(w[i]) : qt::f32_to_f16(w[i]);
        std::memcpy(&host_bytes[i * 2], &h, 2);
      }
    }
    cpu.data = host_bytes.data();
    dev.emplace_back(GPU, host_bytes);
    gpu.data = dev.back().ptr();
  }
};

}  // namespace

namespace {

const char* dtype_label(DType t) { return qt::dtype_name(t); }

// ---------------------------------------------------------------------------------------------------------
// ops
// ---------------------------------------------------------------------------------------------------------

void check_embedding(Report& R) {
  const int V = 1000, C = 96, N = 50;
  std::vector<int32_t> ids(N);
  for (int n = 0; n < N; n++) ids[n] = static_cast<int32_t>(qt::rng_u64(11, n) % V);
  ids[7] = ids[3];  // repeats add up in order
  DevBuf dids(GPU, ids);
  for (DType t : {DType::BF16, DType::F16, DType::F32}) {
    WeightPair w(rand_vec(static_cast<size_t>(V) * C, 12), V, C, t, false);
    std::vector<float> out_c = nans(static_cast<size_t>(N) * C);
    DevBuf out_g(GPU, nans(static_cast<size_t>(N) * C));
    CPU.embedding_forward(out_c.data(), ids.data(), w.cpu, N, C);
    GPU.embedding_forward(out_g.f(), dids.as<int32_t>(), w.gpu, N, C);
    exact(R, "ops", std::string("embedding_forward ") + dtype_label(t), out_c, out_g.get());
  }
  auto dwte0 = rand_vec(static_cast<size_t>(V) * C, 13), dout = rand_vec(static_cast<size_t>(N) * C, 14);
  std::vector<float> dwte_c = dwte0;
  DevBuf dwte_g(GPU, dwte0), ddout(GPU, dout);
  CPU.embedding_backward(dwte_c.data(), dout.data(), ids.data(), N, C);
  GPU.embedding_backward(dwte_g.f(), ddout.f(), dids.as<int32_t>(), N, C);
  exact(R, "ops", "embedding_backward (repeated ids)", dwte_c, dwte_g.get());
}

void check_neftune(Report& R) {
  const int B = 3, T = 40, C = 96;
  std::vector<int32_t> lengths = {40, 17, 1};
  auto x0 = rand_vec(static_cast<size_t>(B) * T * C, 21);
  std::vector<float> xc = x0;
  DevBuf xg(GPU, x0), dl(GPU, lengths);
  CPU.neftune_forward(xc.data(), lengths.data(), 5.0f, 777, B, T, C);
  GPU.neftune_forward(xg.f(), dl.as<int32_t>(), 5.0f, 777, B, T, C);
  auto got = xg.get();
  exact(R, "ops", "neftune_forward (same noise as the CPU)", xc, got);
  R.check("ops", "neftune_forward leaves padding untouched", got[(static_cast<size_t>(1) * T + 30) * C] == x0[(static_cast<size_t>(1) * T + 30) * C]);
}

void check_rmsnorm(Report& R) {
  struct Shape {
    int N, C;
  };
  // rows take decode_kernels.h's rmsnorm_rows ([decode], QT_CUDA_DECODE=1; a 4096-wide row in one pass of 1024 threads),
  // whatever their number (run 17; before, more than 256 rows took the one-block-per-row kernel); both paths on each shape
  for (Shape sh : {Shape{37, 96}, Shape{37, 4096}, Shape{1, 4096}, Shape{3, 8192}, Shape{300, 4096}}) {
    const int N = sh.N, C = sh.C;
    auto x = rand_vec(static_cast<size_t>(N) * C, 31, -2, 2), w = rand_vec(C, 32, 0.5f, 1.5f);
    auto dy = rand_vec(static_cast<size_t>(N) * C, 33), dx0 = rand_vec(static_cast<size_t>(N) * C, 34), dw0 = rand_vec(C, 35);
    std::vector<float> out_c = nans(static_cast<size_t>(N) * C), rstd_c = nans(N);
    DevBuf dxg(GPU, x), dwg(GPU, w);
    CPU.rmsnorm_forward(out_c.data(), rstd_c.data(), x.data(), w.data(), N, C, 1e-5f);
    for (const char* mode : {"1", "0"}) {
      qt::cuda::set_path("decode", mode);
      const bool rows = std::strcmp(mode, "1") == 0;
      const std::string tag = " N=" + std::to_string(N) + " C=" + std::to_string(C) + (rows ? " [decode]" : "");
      DevBuf out_g(GPU, nans(static_cast<size_t>(N) * C)), rstd_g(GPU, nans(N));
      const bool used = ran_section("rmsnorm.rows", [&] { GPU.rmsnorm_forward(out_g.f(), rstd_g.f(), dxg.f(), dwg.f(), N, C, 1e-5f); });
      R.check("ops", std::string("rmsnorm_forward ") + (rows ? "takes" : "does not take") + " the rows kernel" + tag, used == rows);
      cmp(R, "ops", "rmsnorm_forward out" + tag, out_c, out_g.get(), 1e-6);
      cmp(R, "ops", "rmsnorm_forward rstd" + tag, rstd_c, rstd_g.get(), 1e-6);
    }
    restore_paths();
    if (N == 1 || N == 300) continue;  // backward is one kernel whatever N
    const std::string tag = " N=" + std::to_string(N) + " C=" + std::to_string(C);
    std::vector<float> dx_c = dx0, dw_c = dw0;
    DevBuf ddy(GPU, dy), dx_g(GPU, dx0), dw_g(GPU, dw0), drstd(GPU, rstd_c);
    CPU.rmsnorm_backward(dx_c.data(), dw_c.data(), dy.data(), x.data(), w.data(), rstd_c.data(), N, C);
    GPU.rmsnorm_backward(dx_g.f(), dw_g.f(), ddy.f(), dxg.f(), dwg.f(), drstd.f(), N, C);
    cmp(R, "ops", "rmsnorm_backward dinp (+=)" + tag, dx_c, dx_g.get(), 1e-5);
    cmp(R, "ops", "rmsnorm_backward dweight (+=)" + tag, dw_c, dw_g.get(), 1e-5);
  }
}

// Llama-3.1's RoPE inverse frequencies (head size 128, theta 500000, llama3 scaling) for the RoPE checks.
std::vector<float> llama3_inv_freq() {
  qt::ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0f;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position = 8192;
  return qt::rope_inv_freq(c);
}

void check_rope(Report& R) {
  auto inv = llama3_inv_freq();
  DevBuf dinv(GPU, inv);
  struct Case {
    int B, T, H, pos0;
  };
  for (Case k : {Case{2, 50, 8, 7}, Case{1, 4, 4, 8000}}) {
    const int HS = 128;
    const size_t n = static_cast<size_t>(k.B) * k.T * k.H * HS;
    auto x = rand_vec(n, 41, -2, 2);
    std::vector<float> out_c = nans(n);
    DevBuf xg(GPU, x), out_g(GPU, nans(n));
    CPU.rope_forward(out_c.data(), x.data(), inv.data(), k.B, k.T, k.H, HS, k.pos0);
    GPU.rope_forward(out_g.f(), xg.f(), dinv.f(), k.B, k.T, k.H, HS, k.pos0);
    const std::string tag = " pos0=" + std::to_string(k.pos0);
    cmp(R, "ops", "rope_forward" + tag, out_c, out_g.get(), 1e-5);
    std::vector<float> back_c = x;  // in place, as model.cpp calls it
    CPU.rope_backward(back_c.data(), back_c.data(), inv.data(), k.B, k.T, k.H, HS, k.pos0);
    GPU.rope_backward(xg.f(), xg.f(), dinv.f(), k.B, k.T, k.H, HS, k.pos0);
    cmp(R, "ops", "rope_backward in place" + tag, back_c, xg.get(), 1e-5);
  }
}

// The decode fusions (model.cpp): each fused op on the GPU against the GPU's own unfused ops, bit for bit, and against
// the CPU. add_rmsnorm_forward (in place on a, as model.cpp's x_mid = x_mid + x) vs add + rmsnorm_forward, on decode
// and odd shapes with QT_CUDA_DECODE on and off (the fused kernel must take the path rmsnorm_forward takes: the rows
// kernel with the add inside whatever the rows, since run 17; with QT_CUDA_DECODE=0 the one-block-per-row kernel with
// the add inside), and with a
// misaligned addend (the rows path then runs the add and the plain rows kernel). rope_forward_qk vs rope_forward on q
// and then on k, with k a slot of a KV cache (the rest of the cache must be untouched).
void check_decode_fusions(Report& R) {
  struct Shape {
    int N, C;
  };
  for (Shape sh : {Shape{1, 4096}, Shape{37, 96}, Shape{3, 8192}, Shape{512, 4096}}) {
    const int N = sh.N, C = sh.C;
    const size_t n = static_cast<size_t>(N) * C;
    const auto a = rand_vec(n, 51, -2, 2), b = rand_vec(n, 52, -2, 2), w = rand_vec(C, 53, 0.5f, 1.5f);
    std::vector<float> sum_c(n), out_c(n), rstd_c(N);
    CPU.add(sum_c.data(), a.data(), b.data(), n);
    CPU.rmsnorm_forward(out_c.data(), rstd_c.data(), sum_c.data(), w.data(), N, C, 1e-5f);
    DevBuf db(GPU, b), dw(GPU, w);
    for (const char* mode : {"1", "0"}) {
      qt::cuda::set_path("decode", mode);
      const bool rows = std::strcmp(mode, "1") == 0;
      const std::string tag = " N=" + std::to_string(N) + " C=" + std::to_string(C) + (rows ? " [decode]" : "");
      DevBuf xu(GPU, a), out_u(GPU, nans(n)), rstd_u(GPU, nans(N));
      GPU.add(xu.f(), xu.f(), db.f(), n);
      GPU.rmsnorm_forward(out_u.f(), rstd_u.f(), xu.f(), dw.f(), N, C, 1e-5f);
      DevBuf xf(GPU, a), out_f(GPU, nans(n)), rstd_f(GPU, nans(N));
      const bool used = ran_section("add_rmsnorm.rows", [&] {
        GPU.add_rmsnorm_forward(xf.f(), out_f.f(), rstd_f.f(), xf.f(), db.f(), dw.f(), N, C, 1e-5f);
      });
      R.check("ops", std::string("add_rmsnorm_forward ") + (rows ? "takes" : "does not take") + " the fused rows kernel" + tag,
              used == rows);
      exact(R, "ops", "add_rmsnorm_forward x_out == add" + tag, xu.get(), xf.get());
      exact(R, "ops", "add_rmsnorm_forward out == add + rmsnorm_forward" + tag, out_u.get(), out_f.get());
      exact(R, "ops", "add_rmsnorm_forward rstd == add + rmsnorm_forward" + tag, rstd_u.get(), rstd_f.get());
      cmp(R, "ops", "add_rmsnorm_forward out vs CPU" + tag, out_c, out_f.get(), 1e-6);
      cmp(R, "ops", "add_rmsnorm_forward rstd vs CPU" + tag, rstd_c, rstd_f.get(), 1e-6);
    }
    restore_paths();
  }
  {  // an addend 4 bytes off 16-byte alignment on the rows path: add kernel + rows kernel, the same bits
    const int N = 1, C = 4096;
    const size_t n = static_cast<size_t>(N) * C;
    const auto a = rand_vec(n, 54, -2, 2), w = rand_vec(C, 55, 0.5f, 1.5f);
    auto b1 = rand_vec(n + 1, 56, -2, 2);
    DevBuf db1(GPU, b1), dw(GPU, w);
    const float* b = db1.f() + 1;
    DevBuf xu(GPU, a), out_u(GPU, nans(n)), rstd_u(GPU, nans(N));
    GPU.add(xu.f(), xu.f(), b, n);
    GPU.rmsnorm_forward(out_u.f(), rstd_u.f(), xu.f(), dw.f(), N, C, 1e-5f);
    DevBuf xf(GPU, a), out_f(GPU, nans(n)), rstd_f(GPU, nans(N));
    qt::cuda::profile_begin();
    GPU.add_rmsnorm_forward(xf.f(), out_f.f(), rstd_f.f(), xf.f(), b, dw.f(), N, C, 1e-5f);
    bool fused = false, plain = false;
    for (const auto& e : qt::cuda::profile_end()) {
      fused = fused || e.name == "add_rmsnorm.rows";
      plain = plain || e.name == "rmsnorm.rows";
    }
    const std::string tag = " N=1 C=4096 misaligned addend [decode]";
    if (std::strcmp(default_decode(), "1") == 0)
      R.check("ops", "add_rmsnorm_forward takes add + the plain rows kernel" + tag, !fused && plain);
    exact(R, "ops", "add_rmsnorm_forward x_out == add" + tag, xu.get(), xf.get());
    exact(R, "ops", "add_rmsnorm_forward out == add + rmsnorm_forward" + tag, out_u.get(), out_f.get());
    exact(R, "ops", "add_rmsnorm_forward rstd == add + rmsnorm_forward" + tag, rstd_u.get(), rstd_f.get());
  }

  const auto inv = llama3_inv_freq();
  DevBuf dinv(GPU, inv);
  struct Case {
    int B, T, NH, NKV, pos0;
  };
  for (Case k : {Case{1, 1, 32, 8, 4000}, Case{1, 1, 28, 4, 5}, Case{2, 50, 8, 2, 7}, Case{1, 37, 32, 8, 0}}) {
    const int HS = 128;
    const size_t nq = static_cast<size_t>(k.B) * k.T * k.NH * HS, nk = static_cast<size_t>(k.B) * k.T * k.NKV * HS;
    // k lives in a cache of pos0 + T + 3 positions at slot pos0 (B = 1, as model.cpp's kdst), or alone (B > 1)
    const size_t slot = k.B == 1 ? static_cast<size_t>(k.pos0) * k.NKV * HS : 0;
    const size_t cache_n = k.B == 1 ? static_cast<size_t>(k.pos0 + k.T + 3) * k.NKV * HS : nk;
    const auto q = rand_vec(nq, 57, -2, 2), cache = rand_vec(cache_n, 58, -2, 2);
    DevBuf qu(GPU, q), ku(GPU, cache), qf(GPU, q), kf(GPU, cache);
    GPU.rope_forward(qu.f(), qu.f(), dinv.f(), k.B, k.T, k.NH, HS, k.pos0);
    GPU.rope_forward(ku.f() + slot, ku.f() + slot, dinv.f(), k.B, k.T, k.NKV, HS, k.pos0);
    GPU.rope_forward_qk(qf.f(), kf.f() + slot, dinv.f(), k.B, k.T, k.NH, k.NKV, HS, k.pos0);
    const std::string tag = " B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) + " NH=" + std::to_string(k.NH) +
                            " NKV=" + std::to_string(k.NKV) + " pos0=" + std::to_string(k.pos0);
    exact(R, "ops", "rope_forward_qk q == rope_forward" + tag, qu.get(), qf.get());
    exact(R, "ops", "rope_forward_qk k (whole cache) == rope_forward" + tag, ku.get(), kf.get());
    std::vector<float> q_c = q;
    CPU.rope_forward(q_c.data(), q_c.data(), inv.data(), k.B, k.T, k.NH, HS, k.pos0);
    cmp(R, "ops", "rope_forward_qk q vs CPU" + tag, q_c, qf.get(), 1e-5);
  }
}

// Both attention paths against the CPU: fp32 compute runs the fp32 SIMT kernels (tight tolerances); bf16 compute runs
// the tensor-core kernels (attention_tc.h: bf16 operands, fp32 accumulation; tolerances ~3x what the warp simulator
// measured for these shapes in native/tests/test_cuda_kernels.cpp), and with QT_CUDA_ATTN=simt the SIMT ones again.
void check_attention(Report& R) {
  struct Case {
    const char* name;
    int B, Tq, Tk, NH, NKV, HS;
    std::vector<int32_t> lengths;  // empty: none
  };
  std::vector<Case> cases = {
      {"T=1024 GQA 8/2 HS=128", 2, 1024, 1024, 8, 2, 128, {}},
      {"T=1100 (past kAttnDsMaxT: dq recomputes dS), GQA 4/2 HS=64", 1, 1100, 1100, 4, 2, 64, {}},
      {"padded lengths 77/50/1, MQA 4/1 HS=64", 3, 77, 77, 4, 1, 64, {77, 50, 1}},
      {"decode Tq=1 Tk=130 HS=128", 1, 1, 130, 8, 2, 128, {}},
      {"prefill on a cache Tq=5 Tk=40 HS=16", 1, 5, 40, 4, 2, 16, {}},
      {"tiny heads HS=8, an empty row", 2, 33, 33, 4, 2, 8, {0, 33}},
      {"Llama-3-8B heads 32/8 HS=128, B=2 T=333 padded", 2, 333, 333, 32, 8, 128, {333, 200}},
      {"decode Llama-3-8B heads 32/8 Tk=1000 (32 splits)", 1, 1, 1000, 32, 8, 128, {}},
      {"decode B=3 lengths 40/7/0, MQA 4/1 HS=64", 3, 1, 40, 4, 1, 64, {40, 7, 0}},
  };
  struct Path {
    const char* tag;
    DType compute;
    const char* attn;
    double tol_out, tol_lse, tol_grad;
    const char* split;  // QT_CUDA_ATTN_SPLIT for the tensor-core backward's dk/dv pass
    const char* fwd_mt = "2";  // QT_CUDA_ATTN_FWD_MT: m-tiles per warp of the tensor-core forward
    const char* ds = "1";      // QT_CUDA_ATTN_DS: dS stored by the dk/dv pass (Tq == Tk), dq = dS K from it
  };
  // fp16 tc16: run 3's forward on fp16 operands (8x finer rounding: out ~4e-4 in the simulator, tolerance 3e-3); its
  // backward is the bf16 tc one. Run 11: the dk/dv pass both ways (a block per query head with per-head partials, or
  // per KV head; "auto" picks by grid size, which for these small cases is always the split)
  const Path path_list[] = {{"fp32 simt", DType::F32, "tc", 1e-5, 1e-6, 5e-5, "auto"},
                            {"fp16 tc16", DType::BF16, "tc16", 3e-3, 5e-4, 3e-2, "auto"},
                            {"fp16 tc16, dk/dv per KV head", DType::BF16, "tc16", 3e-3, 5e-4, 3e-2, "0"},
                            {"fp16 tc16, dk/dv split per query head", DType::BF16, "tc16", 3e-3, 5e-4, 3e-2, "1"},
                            {"fp16 tc16, forward with one m-tile per warp", DType::BF16, "tc16", 3e-3, 5e-4, 3e-2, "auto", "1"},
                            {"fp16 tc16, dq recomputing dS (QT_CUDA_ATTN_DS=0)", DType::BF16, "tc16", 3e-3, 5e-4, 3e-2, "auto", "2", "0"},
                            {"fp16 tc16, dk/dv per KV head, dq recomputing dS", DType::BF16, "tc16", 3e-3, 5e-4, 3e-2, "0", "2", "0"},
                            {"bf16 tc", DType::BF16, "tc", 1.5e-2, 2e-3, 3e-2, "auto"},
                            {"bf16 with QT_CUDA_ATTN=simt", DType::BF16, "simt", 1e-5, 1e-6, 5e-5, "auto"}};
  uint64_t seed = 100;
  for (const Case& k : cases) {
    const size_t nq = static_cast<size_t>(k.B) * k.Tq * k.NH * k.HS, nk = static_cast<size_t>(k.B) * k.Tk * k.NKV * k.HS;
    const size_t nl = static_cast<size_t>(k.B) * k.NH * k.Tq;
    auto q = rand_vec(nq, ++seed, -2, 2), kk = rand_vec(nk, ++seed, -2, 2), v = rand_vec(nk, ++seed);
    const int32_t* len_c = k.lengths.empty() ? nullptr : k.lengths.data();
    std::vector<int32_t> lens = k.lengths.empty() ? std::vector<int32_t>{0} : k.lengths;
    DevBuf dq_(GPU, q), dk_(GPU, kk), dv_(GPU, v), dlen(GPU, lens);
    const int32_t* len_g = k.lengths.empty() ? nullptr : dlen.as<int32_t>();
    std::vector<float> out_c = nans(nq), lse_c = nans(nl);
    CPU.attention_forward(out_c.data(), lse_c.data(), q.data(), kk.data(), v.data(), len_c, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS, DType::F32);
    auto dout = rand_vec(nq, ++seed), gq0 = rand_vec(nq, ++seed), gk0 = rand_vec(nk, ++seed), gv0 = rand_vec(nk, ++seed);
    std::vector<float> gq = gq0, gk = gk0, gv = gv0;
    CPU.attention_backward(gq.data(), gk.data(), gv.data(), dout.data(), q.data(), kk.data(), v.data(), out_c.data(), lse_c.data(),
                           len_c, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS, DType::F32);
    DevBuf ddout(GPU, dout), dout_o(GPU, out_c), dlse(GPU, lse_c);
    auto inc = [](const std::vector<float>& a, const std::vector<float>& a0) {
      std::vector<float> r(a.size());
      for (size_t i = 0; i < a.size(); i++) r[i] = a[i] - a0[i];
      return r;
    };
    for (const Path& pth : path_list) {
      qt::cuda::set_path("attn", pth.attn);
      qt::cuda::set_path("attn_split", pth.split);
      qt::cuda::set_path("attn_fwd_mt", pth.fwd_mt);
      qt::cuda::set_path("attn_ds", pth.ds);
      qt::cuda::set_path("decode", "0");  // the single-query kernels are checked below
      const std::string tag = std::string(" [") + pth.tag + "] " + k.name;
      DevBuf out_g(GPU, nans(nq)), lse_g(GPU, nans(nl));
      GPU.attention_forward(out_g.f(), lse_g.f(), dq_.f(), dk_.f(), dv_.f(), len_g, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS, pth.compute);
      cmp(R, "ops", "attention_forward out" + tag, out_c, out_g.get(), pth.tol_out);
      cmp_lse(R, "ops", "attention_forward lse" + tag, lse_c, lse_g.get(), pth.tol_lse);
      // backward from the CPU's out and lse (the op's inputs), accumulating into random gradients: compare increments
      DevBuf gq_g(GPU, gq0), gk_g(GPU, gk0), gv_g(GPU, gv0);
      GPU.attention_backward(gq_g.f(), gk_g.f(), gv_g.f(), ddout.f(), dq_.f(), dk_.f(), dv_.f(), dout_o.f(), dlse.f(), len_g, k.B, k.Tq,
                             k.Tk, k.NH, k.NKV, k.HS, pth.compute);
      const auto rq = gq_g.get(), rk = gk_g.get(), rv = gv_g.get();
      cmp(R, "ops", "attention_backward dq increment" + tag, inc(gq, gq0), inc(rq, gq0), pth.tol_grad);
      cmp(R, "ops", "attention_backward dk increment" + tag, inc(gk, gk0), inc(rk, gk0), pth.tol_grad);
      cmp(R, "ops", "attention_backward dv increment" + tag, inc(gv, gv0), inc(rv, gv0), pth.tol_grad);
      if (pth.compute == DType::BF16 && std::string(pth.attn) != "simt") {  // no atomics: the same bits every run
        DevBuf gq2(GPU, gq0), gk2(GPU, gk0), gv2(GPU, gv0), out2(GPU, nans(nq)), lse2(GPU, nans(nl));
        GPU.attention_forward(out2.f(), lse2.f(), dq_.f(), dk_.f(), dv_.f(), len_g, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS, pth.compute);
        GPU.attention_backward(gq2.f(), gk2.f(), gv2.f(), ddout.f(), dq_.f(), dk_.f(), dv_.f(), dout_o.f(), dlse.f(), len_g, k.B, k.Tq,
                               k.Tk, k.NH, k.NKV, k.HS, pth.compute);
        R.check("ops", "attention deterministic (fwd + bwd bit-identical on a rerun)" + tag,
                bit_equal(out_g.get(), out2.get()) && bit_equal(rq, gq2.get()) && bit_equal(rk, gk2.get()) && bit_equal(rv, gv2.get()));
      }
    }
    if (k.Tq == 1)  // decode_kernels.h's split-key kernel (QT_CUDA_DECODE=1): fp32 math whatever the compute dtype
      for (DType compute : {DType::F32, DType::BF16}) {
        restore_paths();
        qt::cuda::set_path("decode", "1");
        const std::string tag = std::string(" [decode] compute=") + dtype_label(compute) + " " + k.name;
        std::vector<std::vector<float>> outs, lses;
        for (int rep = 0; rep < 2; rep++) {
          DevBuf out_g(GPU, nans(nq)), lse_g(GPU, nans(nl));
          const bool used = ran_section("attention.decode", [&] {
            GPU.attention_forward(out_g.f(), lse_g.f(), dq_.f(), dk_.f(), dv_.f(), len_g, k.B, k.Tq, k.Tk, k.NH, k.NKV, k.HS, compute);
          });
          if (rep == 0) R.check("ops", "attention_forward takes the single-query kernel" + tag, used);
          outs.push_back(out_g.get());
          lses.push_back(lse_g.get());
        }
        cmp(R, "ops", "attention_forward out" + tag, out_c, outs[0], 1e-5);
        cmp_lse(R, "ops", "attention_forward lse" + tag, lse_c, lses[0], 1e-6);
        R.check("ops", "attention_forward deterministic (rerun bit-identical)" + tag, bit_equal(outs[0], outs[1]) && bit_equal(lses[0], lses[1]));
      }
    restore_paths();
  }
}

void check_swiglu(Report& R) {
  const size_t n = 10007;
  auto g = rand_vec(n, 51, -6, 6), u = rand_vec(n, 52, -2, 2), dout = rand_vec(n, 53);
  std::vector<float> out_c = nans(n);
  DevBuf gg(GPU, g), ug(GPU, u), out_g(GPU, nans(n)), dg(GPU, dout);
  CPU.swiglu_forward(out_c.data(), g.data(), u.data(), n);
  GPU.swiglu_forward(out_g.f(), gg.f(), ug.f(), n);
  cmp(R, "ops", "swiglu_forward", out_c, out_g.get(), 1e-6);
  {  // arrays not 16-byte aligned take the scalar loop (run 11's float4 one needs alignment)
    DevBuf out_u(GPU, nans(n));
    GPU.swiglu_forward(out_u.f() + 1, gg.f() + 1, ug.f() + 1, n - 1);
    auto got = out_u.get();
    R.check("ops", "swiglu_forward on unaligned arrays == aligned result",
            std::equal(got.begin() + 1, got.end(), out_g.get().begin() + 1) && std::isnan(got[0]));
  }
  auto a0 = rand_vec(n, 54), b0 = rand_vec(n, 55);
  std::vector<float> da = a0, db = b0;
  DevBuf da_g(GPU, a0), db_g(GPU, b0);
  CPU.swiglu_backward(da.data(), db.data(), dout.data(), g.data(), u.data(), n);
  GPU.swiglu_backward(da_g.f(), db_g.f(), dg.f(), gg.f(), ug.f(), n);
  cmp(R, "ops", "swiglu_backward dgate (+=)", da, da_g.get(), 1e-6);
  cmp(R, "ops", "swiglu_backward dup (+=)", db, db_g.get(), 1e-6);
}

void check_matmul(Report& R) {
  const int N = 77, C = 1536, OC = 768;
  auto w = rand_vec(static_cast<size_t>(OC) * C, 61, -0.05f, 0.05f);
  auto x = rand_vec(static_cast<size_t>(N) * C, 62), bias = rand_vec(OC, 63), dout = rand_vec(static_cast<size_t>(N) * OC, 64);
  auto dx0 = rand_vec(static_cast<size_t>(N) * C, 65), db0 = rand_vec(OC, 66), dw0 = rand_vec(static_cast<size_t>(OC) * C, 67);
  DevBuf xg(GPU, x), bg(GPU, bias), doutg(GPU, dout);
  struct WCase {
    DType t;
    bool dq;
    const char* name;
  };
  for (WCase wc : {WCase{DType::F32, false, "F32"}, WCase{DType::BF16, false, "BF16"}, WCase{DType::F16, false, "F16"},
                   WCase{DType::NF4, false, "NF4"}, WCase{DType::NF4, true, "NF4+DQ"}}) {
    WeightPair wp(w, OC, C, wc.t, wc.dq);
    std::vector<float> out_c = nans(static_cast<size_t>(N) * OC);
    CPU.matmul_forward(out_c.data(), x.data(), wp.cpu, bias.data(), N, C, OC);
    std::vector<float> dx_c = dx0, db_c = db0, dw_c = dw0;
    CPU.matmul_backward(dx_c.data(), wc.t == DType::F32 ? dw_c.data() : nullptr, db_c.data(), dout.data(), x.data(), wp.cpu, N, C, OC);
    struct CCase {
      DType t;
      double tol_fwd, tol_bwd;
    };
    // bf16 operands: ~2^-9 relative rounding per operand; fp16: 2^-12; fp32: summation order only
    for (CCase cc : {CCase{DType::F32, 1e-5, 1e-5}, CCase{DType::BF16, 1e-2, 1e-2}, CCase{DType::F16, 2e-3, 2e-3}}) {
      qt::Weight wg = wp.gpu;
      wg.compute = cc.t;
      DevBuf out_g(GPU, nans(static_cast<size_t>(N) * OC)), dx_g(GPU, dx0), db_g(GPU, db0), dw_g(GPU, dw0);
      GPU.matmul_forward(out_g.f(), xg.f(), wg, bg.f(), N, C, OC);
      GPU.matmul_backward(dx_g.f(), wc.t == DType::F32 ? dw_g.f() : nullptr, db_g.f(), doutg.f(), xg.f(), wg, N, C, OC);
      const std::string tag = std::string(" w=") + wc.name + " compute=" + dtype_label(cc.t);
      cmp(R, "ops", "matmul_forward" + tag, out_c, out_g.get(), cc.tol_fwd);
      // the +dx0 background hides GEMM error in a rel-L2 over dx: compare the increments
      auto dxg = dx_g.get();
      std::vector<float> inc_c(dx_c.size()), inc_g(dx_c.size());
      for (size_t i = 0; i < dx_c.size(); i++) {
        inc_c[i] = dx_c[i] - dx0[i];
        inc_g[i] = dxg[i] - dx0[i];
      }
      cmp(R, "ops", "matmul_backward dinp increment" + tag, inc_c, inc_g, cc.tol_bwd);
      cmp(R, "ops", "matmul_backward dbias (+=)" + tag, db_c, db_g.get(), 1e-5);
      if (wc.t == DType::F32) cmp(R, "ops", "matmul_backward dweight (+=)" + tag, dw_c, dw_g.get(), 1e-5);
    }
  }
}

// The fused NF4 GEMV (decode: N <= 4 rows, straight from the codes, exact fp32 products whatever the compute
// dtype) against the CPU: run 4's staged-x kernel ([gemv4], QT_CUDA_GEMV=4; N = 1, N > 1 takes gemv3), run 3's
// warp-per-rows kernel ([gemv3], QT_CUDA_GEMV=3), run 2's block kernel ([gemv],
// QT_CUDA_GEMV=1), and the dequantize + GEMM path they replace (QT_CUDA_GEMV=0) for the same inputs; then Llama-3-8B
// shapes at N = 1, where run 3's persistent grid strides over more row groups than it has warps.
std::string gemv_tag(const std::string& mode) {
  return mode == "7" ? " [gemv7]" : mode == "6" ? " [gemv6]" : mode == "4" ? " [gemv4]" : mode == "3" ? " [gemv3]" : " [gemv]";
}

void check_gemv(Report& R) {
  const int C = 1536, OC = 773;  // a partial last row group
  auto w = rand_vec(static_cast<size_t>(OC) * C, 161, -0.05f, 0.05f);
  for (bool dq : {true, false}) {
    WeightPair wp(w, OC, C, DType::NF4, dq);
    for (int N : {1, 2, 3, 4}) {
      auto x = rand_vec(static_cast<size_t>(N) * C, 170 + N, -2, 2), bias = rand_vec(OC, 180 + N);
      DevBuf xg(GPU, x), bg(GPU, bias);
      std::vector<float> ref = nans(static_cast<size_t>(N) * OC);
      CPU.matmul_forward(ref.data(), x.data(), wp.cpu, bias.data(), N, C, OC);
      for (DType compute : {DType::F32, DType::BF16}) {
        qt::Weight wg = wp.gpu;
        wg.compute = compute;
        const std::string tag = std::string(dq ? " NF4+DQ" : " NF4") + " N=" + std::to_string(N) + " compute=" + dtype_label(compute);
        for (const char* mode : {"7", "6", "4", "3", "1"}) {
          const std::string kt = gemv_tag(mode);
          qt::cuda::set_path("gemv", mode);
          DevBuf out_g(GPU, nans(static_cast<size_t>(N) * OC));
          const bool used = ran_section("matmul.gemv", [&] { GPU.matmul_forward(out_g.f(), xg.f(), wg, bg.f(), N, C, OC); });
          R.check("ops", "matmul_forward takes the GEMV path" + kt + tag, used);
          // gemv7 multiplies fp16-rounded code values when the compute is 16-bit (N = 1); exact fp32 products otherwise
          const bool f16 = std::strcmp(mode, "7") == 0 && N == 1 && compute != DType::F32;
          cmp(R, "ops", "matmul_forward" + kt + tag, ref, out_g.get(), f16 ? 1e-3 : 1e-5);
        }
        qt::cuda::set_path("gemv", "0");
        DevBuf out_o(GPU, nans(static_cast<size_t>(N) * OC));
        const bool used0 = ran_section("matmul.gemv", [&] { GPU.matmul_forward(out_o.f(), xg.f(), wg, bg.f(), N, C, OC); });
        R.check("ops", "QT_CUDA_GEMV=0 turns the GEMV path off" + tag, !used0);
        cmp(R, "ops", "matmul_forward [dequant + GEMM]" + tag, ref, out_o.get(), compute == DType::F32 ? 1e-5 : 1e-2);
      }
    }
  }
  struct Shape {
    int OC, C;
    const char* name;
  };
  for (Shape sh : {Shape{14336, 4096, "gate/up 14336x4096"}, Shape{4096, 14336, "down 4096x14336"}, Shape{1024, 4096, "k/v 1024x4096"}}) {
    auto wl = rand_vec(static_cast<size_t>(sh.OC) * sh.C, 190 + sh.OC, -0.05f, 0.05f);
    WeightPair wp(wl, sh.OC, sh.C, DType::NF4, true);
    auto x = rand_vec(static_cast<size_t>(sh.C), 195, -2, 2);
    DevBuf xg(GPU, x);
    std::vector<float> ref = nans(static_cast<size_t>(sh.OC));
    CPU.matmul_forward(ref.data(), x.data(), wp.cpu, nullptr, 1, sh.C, sh.OC);
    qt::Weight wg = wp.gpu;
    wg.compute = DType::BF16;
    std::vector<std::vector<float>> outs;
    for (const char* mode : {"4", "3", "1", "6"}) {
      const std::string kt = gemv_tag(mode);
      qt::cuda::set_path("gemv", mode);
      for (int rep = 0; rep < 2; rep++) {
        DevBuf out_g(GPU, nans(static_cast<size_t>(sh.OC)));
        GPU.matmul_forward(out_g.f(), xg.f(), wg, nullptr, 1, sh.C, sh.OC);
        outs.push_back(out_g.get());
      }
      cmp(R, "ops", "matmul_forward" + kt + " NF4+DQ N=1 " + sh.name, ref, outs[outs.size() - 2], 1e-5);
      exact(R, "ops", "matmul_forward" + kt + " deterministic (rerun) " + sh.name, outs[outs.size() - 2], outs.back());
    }
    // gemv4 reads x from its staged copy: the same products in the same order as gemv3, whatever its rows per warp
    exact(R, "ops", "matmul_forward [gemv4] equals [gemv3] bit for bit N=1 " + std::string(sh.name), outs[0], outs[2]);
    // gemv6 only forms its table offsets differently: the same bits again
    exact(R, "ops", "matmul_forward [gemv6] equals [gemv3] bit for bit N=1 " + std::string(sh.name), outs[6], outs[2]);
    {  // gemv7 (bf16 compute: the fp16 pair table): within fp16's rounding of the code values, deterministic, and the
       // same bits whatever its rows per warp; with fp32 compute it takes gemv6's exact products
      qt::cuda::set_path("gemv", "7");
      std::vector<float> o7[3];
      for (const char* rows : {"0", "1", "2"}) {
        qt::cuda::set_path("gemv_rows", rows);
        DevBuf out_g(GPU, nans(static_cast<size_t>(sh.OC)));
        GPU.matmul_forward(out_g.f(), xg.f(), wg, nullptr, 1, sh.C, sh.OC);
        o7[rows[0] - '0'] = out_g.get();
      }
      qt::cuda::set_path("gemv_rows", "0");
      DevBuf again(GPU, nans(static_cast<size_t>(sh.OC)));
      GPU.matmul_forward(again.f(), xg.f(), wg, nullptr, 1, sh.C, sh.OC);
      cmp(R, "ops", "matmul_forward [gemv7] bf16 compute N=1 " + std::string(sh.name), ref, o7[0], 1e-3);
      exact(R, "ops", "matmul_forward [gemv7] deterministic (rerun) " + std::string(sh.name), o7[0], again.get());
      exact(R, "ops", "matmul_forward [gemv7] 1 and 2 rows/warp give the same bits " + std::string(sh.name), o7[1], o7[2]);
      qt::Weight w32 = wg;
      w32.compute = DType::F32;
      DevBuf out32(GPU, nans(static_cast<size_t>(sh.OC)));
      GPU.matmul_forward(out32.f(), xg.f(), w32, nullptr, 1, sh.C, sh.OC);
      exact(R, "ops", "matmul_forward [gemv7] fp32 compute equals [gemv3] bit for bit " + std::string(sh.name), outs[2], out32.get());
    }
    for (const char* mode : {"4", "6"}) {
      qt::cuda::set_path("gemv", mode);
      for (const char* rows : {"1", "2"}) {
        qt::cuda::set_path("gemv_rows", rows);
        DevBuf out_g(GPU, nans(static_cast<size_t>(sh.OC)));
        GPU.matmul_forward(out_g.f(), xg.f(), wg, nullptr, 1, sh.C, sh.OC);
        exact(R, "ops", std::string("matmul_forward") + gemv_tag(mode) + " " + rows + " rows/warp equals [gemv3] N=1 " + sh.name, outs[2],
              out_g.get());
      }
    }
    qt::cuda::set_path("gemv_rows", "0");
  }
  // a layer's q/k/v and gate/up as one GEMV launch (matmul_forward_many, N = 1): each output bit-identical to its own
  // launch, one "matmul.gemv" section; N = 2 falls back to one call per weight
  struct Group {
    std::vector<int> ocs;
    const char* name;
  };
  for (const Group& gr : {Group{{4096, 1024, 1024}, "q/k/v"}, Group{{14336, 14336}, "gate/up"}}) {
    const int C = 4096, K = static_cast<int>(gr.ocs.size());
    std::vector<std::unique_ptr<WeightPair>> wps;
    for (int i = 0; i < K; i++) {
      auto wl = rand_vec(static_cast<size_t>(gr.ocs[static_cast<size_t>(i)]) * C, 300 + i, -0.05f, 0.05f);
      wps.push_back(std::make_unique<WeightPair>(wl, gr.ocs[static_cast<size_t>(i)], C, DType::NF4, true));
    }
    for (const char* mode : {"4", "6", "7"})
    for (int N : {1, 2}) {
      qt::cuda::set_path("gemv", mode);
      auto x = rand_vec(static_cast<size_t>(N) * C, 310 + N, -2, 2), bias = rand_vec(static_cast<size_t>(gr.ocs[1]), 320);
      DevBuf xg(GPU, x), bg(GPU, bias);
      std::vector<qt::Weight> wg(static_cast<size_t>(K));
      std::vector<const qt::Weight*> ws;
      std::vector<const float*> bs;
      std::vector<DevBuf> outs;
      std::vector<float*> outp;
      for (int i = 0; i < K; i++) {
        wg[static_cast<size_t>(i)] = wps[static_cast<size_t>(i)]->gpu;
        wg[static_cast<size_t>(i)].compute = DType::BF16;
        ws.push_back(&wg[static_cast<size_t>(i)]);
        bs.push_back(i == 1 ? bg.f() : nullptr);  // a Qwen2-style bias on one of them
        outs.emplace_back(GPU, nans(static_cast<size_t>(N) * gr.ocs[static_cast<size_t>(i)]));
      }
      for (auto& o : outs) outp.push_back(o.f());
      qt::cuda::profile_begin();
      GPU.matmul_forward_many(outp.data(), xg.f(), ws.data(), bs.data(), K, N, C);
      int gemv_calls = 0;
      for (const auto& e : qt::cuda::profile_end())
        if (e.name == "matmul.gemv") gemv_calls = e.calls;
      const std::string tag = gemv_tag(mode) + " " + gr.name + " N=" + std::to_string(N);
      R.check("ops", "matmul_forward_many: GEMV launches " + std::to_string(N == 1 ? 1 : K) + tag, gemv_calls == (N == 1 ? 1 : K));
      for (int i = 0; i < K; i++) {
        DevBuf one(GPU, nans(static_cast<size_t>(N) * gr.ocs[static_cast<size_t>(i)]));
        GPU.matmul_forward(one.f(), xg.f(), wg[static_cast<size_t>(i)], bs[static_cast<size_t>(i)], N, C, gr.ocs[static_cast<size_t>(i)]);
        exact(R, "ops", "matmul_forward_many output " + std::to_string(i) + " == matmul_forward alone" + tag, one.get(),
              outs[static_cast<size_t>(i)].get());
      }
    }
  }
  restore_paths();
}

// The NF4 dequantization kernels: vec (16-byte loads and stores, run 2) and the one-byte-per-thread kernel (simple)
// equal the CPU bit for bit (fp32 outputs); the bf16 / fp16 copies the GEMMs multiply are the same with vec2 (run 3's
// coalesced 16-bit stores), vec, auto (the faster of the two, timed on the first >= 16M-weight copy) and simple: the
// same GEMM outputs, bit for bit.
void check_dequant_paths(Report& R) {
  struct Shape {
    int rows, cols;
  };
  for (Shape sh : {Shape{333, 1088}, Shape{1024, 4096}, Shape{7, 65}, Shape{4096, 4096}}) {
    const size_t n = static_cast<size_t>(sh.rows) * sh.cols;
    auto w = rand_vec(n, 190 + sh.rows, -0.08f, 0.08f);
    for (size_t i = 0; i < n; i += 613) w[i] *= 8.0f;
    for (bool dq : {true, false}) {
      if (sh.rows == 4096 && !dq) continue;  // the large shape is there for auto's timing
      WeightPair wp(w, sh.rows, sh.cols, DType::NF4, dq);
      std::vector<float> ref(n);
      CPU.dequantize(ref.data(), wp.cpu);
      const std::string tag = std::string(dq ? " NF4+DQ " : " NF4 ") + std::to_string(sh.rows) + "x" + std::to_string(sh.cols) +
                              (n % 32 ? " (n % 32 != 0: simple kernel either way)" : "");
      std::vector<std::vector<float>> outs;
      const char* modes[] = {"simple", "vec", "vec2", "auto"};
      for (const char* mode : modes) {
        qt::cuda::set_path("dequant", mode);
        const bool fp32_kernel = std::strcmp(mode, "simple") == 0 || std::strcmp(mode, "vec") == 0;
        if (fp32_kernel) {
          DevBuf d(GPU, nans(n));
          GPU.dequantize(d.f(), wp.gpu);
          exact(R, "nf4", std::string("dequantize [") + mode + "] == CPU" + tag, ref, d.get());
        }
        // through a bf16 / fp16 GEMM (the scratch copy matmul multiplies): 5 rows of x
        if (n % 32) continue;
        const int N = 5;
        auto x = rand_vec(static_cast<size_t>(N) * sh.cols, 199, -1, 1);
        DevBuf xg(GPU, x);
        std::vector<float> both;
        for (DType t : {DType::BF16, DType::F16}) {
          qt::Weight wg = wp.gpu;
          wg.compute = t;
          DevBuf o(GPU, nans(static_cast<size_t>(N) * sh.rows));
          GPU.matmul_forward(o.f(), xg.f(), wg, nullptr, N, sh.cols, sh.rows);
          auto v = o.get();
          both.insert(both.end(), v.begin(), v.end());
        }
        outs.push_back(both);
        if (outs.size() > 1)
          exact(R, "nf4", std::string("bf16/fp16 GEMMs on the [") + mode + "] and simple dequantized copies" + tag, outs[0], outs.back());
      }
    }
  }
  restore_paths();
}

// Consecutive matmuls on one input convert it to bf16 once (QT_CUDA_XCACHE): the same bits as converting every time,
// a LoRA op in between keeps the copy, any other op (here an add that rewrites the input) makes the next matmul convert again.
void check_xcache(Report& R) {
  const int N = 64, C = 1536, O1 = 768, O2 = 512, Rk = 8;
  auto x = rand_vec(static_cast<size_t>(N) * C, 211, -2, 2), y = rand_vec(static_cast<size_t>(N) * C, 212);
  WeightPair w1(rand_vec(static_cast<size_t>(O1) * C, 213, -0.05f, 0.05f), O1, C, DType::NF4, true);
  WeightPair w2(rand_vec(static_cast<size_t>(O2) * C, 214, -0.05f, 0.05f), O2, C, DType::NF4, true);
  qt::Weight g1 = w1.gpu, g2 = w2.gpu;
  g1.compute = g2.compute = DType::BF16;
  auto A = rand_vec(static_cast<size_t>(Rk) * C, 215, -0.1f, 0.1f), Bw = rand_vec(static_cast<size_t>(O1) * Rk, 216, -0.1f, 0.1f);
  DevBuf yg(GPU, y), Ag(GPU, A), Bg(GPU, Bw), ug(GPU, static_cast<size_t>(N) * Rk * 4), scr(GPU, static_cast<size_t>(N) * (C + Rk) * 4);
  auto converts = [](const std::vector<qt::cuda::ProfileEntry>& prof) {
    int n = 0;
    for (const auto& e : prof)
      if (e.name == "matmul.convert") n += e.calls;
    return n;
  };
  std::vector<std::vector<float>> res[2];
  int conv_pair[2] = {0, 0}, conv_lora[2] = {0, 0}, conv_after_add[2] = {0, 0};
  for (int on = 0; on < 2; on++) {
    qt::cuda::set_path("xcache", on ? "1" : "0");
    DevBuf xg(GPU, x), o1(GPU, nans(static_cast<size_t>(N) * O1)), o2(GPU, nans(static_cast<size_t>(N) * O2));
    DevBuf o3(GPU, nans(static_cast<size_t>(N) * O2)), o4(GPU, nans(static_cast<size_t>(N) * O2));
    GPU.zero(scr.ptr(), 4);  // any op first: nothing cached from before counts
    qt::cuda::profile_begin();
    GPU.matmul_forward(o1.f(), xg.f(), g1, nullptr, N, C, O1);
    GPU.matmul_forward(o2.f(), xg.f(), g2, nullptr, N, C, O2);
    conv_pair[on] = converts(qt::cuda::profile_end());
    qt::cuda::profile_begin();
    GPU.lora_forward(o1.f(), ug.f(), scr.f(), xg.f(), Ag.f(), Bg.f(), 0.5f, 0.1f, 7, N, C, O1, Rk, DType::BF16);
    GPU.matmul_forward(o3.f(), xg.f(), g2, nullptr, N, C, O2);
    conv_lora[on] = converts(qt::cuda::profile_end());
    GPU.add(xg.f(), xg.f(), yg.f(), static_cast<size_t>(N) * C);  // rewrites the input
    qt::cuda::profile_begin();
    GPU.matmul_forward(o4.f(), xg.f(), g2, nullptr, N, C, O2);
    conv_after_add[on] = converts(qt::cuda::profile_end());
    res[on] = {o1.get(), o2.get(), o3.get(), o4.get()};
  }
  restore_paths();
  R.check("ops", "xcache: two matmuls on one input convert it once (off: twice)", conv_pair[1] == 1 && conv_pair[0] == 2,
          std::to_string(conv_pair[1]) + " vs " + std::to_string(conv_pair[0]));
  R.check("ops", "xcache: a LoRA op in between keeps the copy", conv_lora[1] == 0 && conv_lora[0] == 1);
  R.check("ops", "xcache: an op that rewrites the input makes the next matmul convert again", conv_after_add[1] == 1);
  const char* what[4] = {"first matmul (+ LoRA)", "second matmul", "matmul after LoRA", "matmul after the input changed"};
  for (int i = 0; i < 4; i++) exact(R, "ops", std::string("xcache on == off: ") + what[i], res[0][static_cast<size_t>(i)], res[1][static_cast<size_t>(i)]);
}

// The bf16 MLP path (backend.h matmul_forward_t / matmul_backward_t / swiglu_*_bf16; model.cpp mlp_in_bf16) against the
// CPU reference, and against the GPU's own fp32-activation ops where the same GEMM runs (then bit for bit).
void check_bf16_mlp_ops(Report& R) {
  const int N = 77, C = 1536, OC = 768;
  WeightPair wp(rand_vec(static_cast<size_t>(OC) * C, 231, -0.05f, 0.05f), OC, C, DType::NF4, true);
  qt::Weight wg = wp.gpu;
  wg.compute = DType::BF16;
  const auto x = rand_vec(static_cast<size_t>(N) * C, 232), dout = rand_vec(static_cast<size_t>(N) * OC, 233);
  const auto xh = qtest::bf16_of(x), douth = qtest::bf16_of(dout);
  const auto xr = qtest::f32_of(xh), doutr = qtest::f32_of(douth);
  DevBuf xg(GPU, x), xhg(GPU, xh), xrg(GPU, xr), dg(GPU, dout), dhg(GPU, douth), drg(GPU, doutr);
  const size_t NO = static_cast<size_t>(N) * OC, NC = static_cast<size_t>(N) * C;
  std::vector<float> ref(NO), ref_r(NO);
  CPU.matmul_forward(ref.data(), x.data(), wp.cpu, nullptr, N, C, OC);
  CPU.matmul_forward(ref_r.data(), xr.data(), wp.cpu, nullptr, N, C, OC);
  {  // fp32 input -> bf16 output (gate/up): the CPU's product within bf16 operands + one rounding
    DevBuf o16(GPU, NO * 2), o32(GPU, nans(NO));
    GPU.matmul_forward_t(o16.ptr(), DType::BF16, xg.f(), DType::F32, wg, N, C, OC);
    GPU.matmul_forward(o32.f(), xg.f(), wg, nullptr, N, C, OC);
    cmp(R, "ops", "matmul_forward_t fp32 in, bf16 out vs CPU", ref, qtest::f32_of(o16.get<uint16_t>()), 1e-2);
    cmp(R, "ops", "matmul_forward_t bf16 out vs the GPU's fp32 out (one rounding)", o32.get(), qtest::f32_of(o16.get<uint16_t>()), 4e-3);
  }
  {  // bf16 input -> fp32 output (down_proj): the same GEMM as matmul_forward on the widened values, bit for bit
    DevBuf o_t(GPU, nans(NO)), o_m(GPU, nans(NO));
    GPU.matmul_forward_t(o_t.f(), DType::F32, xhg.ptr(), DType::BF16, wg, N, C, OC);
    GPU.matmul_forward(o_m.f(), xrg.f(), wg, nullptr, N, C, OC);
    cmp(R, "ops", "matmul_forward_t bf16 in, fp32 out vs CPU", ref_r, o_t.get(), 1e-2);
    exact(R, "ops", "matmul_forward_t bf16 in == matmul_forward on the widened input", o_m.get(), o_t.get());
  }
  std::vector<float> dref(NC, 0.0f), dref_r(NC, 0.0f);
  CPU.matmul_backward(dref.data(), nullptr, nullptr, dout.data(), nullptr, wp.cpu, N, C, OC);
  CPU.matmul_backward(dref_r.data(), nullptr, nullptr, doutr.data(), nullptr, wp.cpu, N, C, OC);
  {  // fp32 dout -> bf16 dinp (dh), overwriting NaNs
    DevBuf d16(GPU, std::vector<uint16_t>(NC, 0x7fc0));
    GPU.matmul_backward_t(d16.ptr(), DType::BF16, false, dg.f(), DType::F32, wg, N, C, OC);
    cmp(R, "ops", "matmul_backward_t bf16 dinp (overwrites) vs CPU", dref, qtest::f32_of(d16.get<uint16_t>()), 1e-2);
  }
  {  // bf16 dout -> fp32 dinp: overwrite (NaN before), then accumulate (dup, then dgate)
    DevBuf d32(GPU, nans(NC));
    GPU.matmul_backward_t(d32.f(), DType::F32, false, dhg.ptr(), DType::BF16, wg, N, C, OC);
    const auto first = d32.get();
    cmp(R, "ops", "matmul_backward_t bf16 dout, fp32 dinp overwritten vs CPU", dref_r, first, 1e-2);
    DevBuf z(GPU, std::vector<float>(NC, 0.0f));
    GPU.matmul_backward(z.f(), nullptr, nullptr, drg.f(), nullptr, wg, N, C, OC);
    cmp(R, "ops", "matmul_backward_t overwrite vs matmul_backward into zeros (GPU)", z.get(), first, 1e-6);
    GPU.matmul_backward_t(d32.f(), DType::F32, true, dhg.ptr(), DType::BF16, wg, N, C, OC);
    auto twice = d32.get();
    std::vector<float> half(NC);
    for (size_t i = 0; i < NC; i++) half[i] = twice[i] - first[i];
    cmp(R, "ops", "matmul_backward_t accumulate adds the product", first, half, 1e-5);
  }
  {
    bool threw = false;
    qt::Weight w32 = wp.gpu;
    w32.compute = DType::F32;
    DevBuf o16(GPU, NO * 2);
    try {
      GPU.matmul_forward_t(o16.ptr(), DType::BF16, xg.f(), DType::F32, w32, N, C, OC);
    } catch (const qt::Error&) {
      threw = true;
    }
    R.check("ops", "matmul_forward_t refuses bf16 activations for a weight computing in fp32", threw);
  }
  // SwiGLU on bf16 arrays: the CPU's fp32 math on the same values, one rounding (expf's last bit may move a rounding)
  const size_t n = 10007;
  const auto gh = qtest::bf16_of(rand_vec(n, 234, -6, 6)), uh = qtest::bf16_of(rand_vec(n, 235, -2, 2)), hh = qtest::bf16_of(rand_vec(n, 236));
  std::vector<uint16_t> oc(n), dgc(n), duc(n);
  CPU.swiglu_forward_bf16(oc.data(), gh.data(), uh.data(), n);
  CPU.swiglu_backward_bf16(dgc.data(), duc.data(), hh.data(), gh.data(), uh.data(), n);
  DevBuf ggb(GPU, gh), ugb(GPU, uh), hgb(GPU, hh), og(GPU, std::vector<uint16_t>(n, 0x7fc0));
  DevBuf dgg(GPU, std::vector<uint16_t>(n, 0x7fc0)), dug(GPU, std::vector<uint16_t>(n, 0x7fc0));
  GPU.swiglu_forward_bf16(og.as<uint16_t>(), ggb.as<uint16_t>(), ugb.as<uint16_t>(), n);
  GPU.swiglu_backward_bf16(dgg.as<uint16_t>(), dug.as<uint16_t>(), hgb.as<uint16_t>(), ggb.as<uint16_t>(), ugb.as<uint16_t>(), n);
  cmp(R, "ops", "swiglu_forward_bf16 vs CPU", qtest::f32_of(oc), qtest::f32_of(og.get<uint16_t>()), 1e-3);
  cmp(R, "ops", "swiglu_backward_bf16 dgate (overwrites) vs CPU", qtest::f32_of(dgc), qtest::f32_of(dgg.get<uint16_t>()), 1e-3);
  cmp(R, "ops", "swiglu_backward_bf16 dup (overwrites) vs CPU", qtest::f32_of(duc), qtest::f32_of(dug.get<uint16_t>()), 1e-3);
  {  // odd offsets: the scalar loop gives the same bits as the 16-byte one
    DevBuf ou(GPU, std::vector<uint16_t>(n, 0x7fc0)), dgu(GPU, std::vector<uint16_t>(n, 0x7fc0)), duu(GPU, std::vector<uint16_t>(n, 0x7fc0));
    GPU.swiglu_forward_bf16(ou.as<uint16_t>() + 1, ggb.as<uint16_t>() + 1, ugb.as<uint16_t>() + 1, n - 1);
    GPU.swiglu_backward_bf16(dgu.as<uint16_t>() + 1, duu.as<uint16_t>() + 1, hgb.as<uint16_t>() + 1, ggb.as<uint16_t>() + 1,
                             ugb.as<uint16_t>() + 1, n - 1);
    const auto a = og.get<uint16_t>(), b = ou.get<uint16_t>(), c = dgg.get<uint16_t>(), d = dgu.get<uint16_t>();
    const auto e = dug.get<uint16_t>(), f = duu.get<uint16_t>();
    R.check("ops", "swiglu bf16 on unaligned arrays == aligned results",
            std::equal(a.begin() + 1, a.end(), b.begin() + 1) && std::equal(c.begin() + 1, c.end(), d.begin() + 1) &&
                std::equal(e.begin() + 1, e.end(), f.begin() + 1) && b[0] == 0x7fc0);
  }
}

void check_bf16_storage(Report& R) {
  const size_t n = (size_t{1} << 20) + 7;
  auto x = rand_vec(n, 201, -1000, 1000);
  x[0] = 1.00390625f;  // ties go to even
  x[1] = 1.01171875f;
  x[2] = 0.0f;
  x[3] = -1e-30f;
  std::vector<uint16_t> hc(n);
  CPU.to_bf16(hc.data(), x.data(), n);
  DevBuf xg(GPU, x), hg(GPU, n * 2), back(GPU, nans(n));
  GPU.to_bf16(hg.as<uint16_t>(), xg.f(), n);
  const auto hgv = hg.get<uint16_t>();
  R.check("ops", "to_bf16 == CPU (round to nearest even), 2^20 + 7 values", hgv == hc);
  {  // from an unaligned source (the scalar loop of the conversion kernel)
    DevBuf hu(GPU, n * 2);
    GPU.to_bf16(hu.as<uint16_t>(), xg.f() + 1, n - 1);
    const auto huv = hu.get<uint16_t>();
    R.check("ops", "to_bf16 from an unaligned source == CPU", std::equal(hc.begin() + 1, hc.end(), huv.begin()));
  }
  std::vector<float> bc(n);
  CPU.from_bf16(bc.data(), hc.data(), n);
  GPU.from_bf16(back.f(), hg.as<uint16_t>(), n);
  exact(R, "ops", "from_bf16 == CPU", bc, back.get());
}

// LoRA on every path against the CPU; the backward compares increments (the accumulated-into values would hide small
// errors). fp32 compute gets fp32 GEMMs on each switch: the fused kernels with the dropout mask inside (lora_kernels.h),
// run 1's masked copy + cuBLAS, and the tf32 switch (the default), which must not use TF32 for fp32 compute; the cublas
// switch keeps fp32 GEMMs for bf16 compute too. The tf32 switch with bf16 compute (training's default) runs the forward's
// u = dropout(x) A^T in lora_xa_tc (hi/lo-split bf16 tensor cores, ~4e-6 in the simulator; checked here at 1e-4, slices
// of C: 2, 16, 1 and, at the training size 2048 x 4096, 16) and every other LoRA GEMM in TF32, checked at a TF32
// tolerance and for giving the same bits twice.
void check_lora(Report& R) {
  // TF32 tolerance. cmp measures rel_l2 = ||got - ref|| / ||ref|| over a whole output. TF32 keeps 10 of fp32's 23
  // mantissa bits: each operand is off by up to 2^-11 relative (rounded) or 2^-10 (truncated), so each product by
  // ~1e-3 at most. On these zero-mean random inputs the products' errors add up like the products themselves, so a dot
  // product's error relative to its value stays that size whatever K (4096 here), and chained GEMMs add theirs (u, then
  // out from u; du, then dA and dinp from du). Simulating TF32 on the inputs below (numpy, float64 reference) gives
  // rel_l2 4e-4 when operands are rounded and 1.5e-3 when truncated, for every shape. 5e-3 passes either with margin,
  // while a wrong result is off by 1e-2 or more: a missing 1/(1-p) by 0.1 (p = 0.1), a different dropout mask by ~0.45,
  // a missing or doubled scale by 0.5-1, a wrong row or operand by ~1.4. (bf16 operands would give 2-3.5e-3 and pass
  // too: this tells a right result from a wrong one, not TF32 from bf16.)
  constexpr double kTf32Tol = 5e-3;
  struct Shape {
    int N, C, OC, Rk;
  };
  struct Mode {
    const char* path;  // set_path("lora", ...)
    DType compute;
    double tol;
    const char* tag;
  };
  const Mode modes[] = {{"fused", DType::F32, 1e-5, "fused"},
                        {"cublas", DType::F32, 1e-5, "cublas"},
                        {"tf32", DType::F32, 1e-5, "tf32 fp32-compute"},
                        {"cublas", DType::BF16, 1e-5, "cublas bf16-compute"},
                        {"tf32", DType::BF16, kTf32Tol, "tf32 bf16-compute"}};
  for (Shape sh : {Shape{50, 256, 192, 8}, Shape{300, 4096, 1024, 32}, Shape{7, 96, 64, 64}, Shape{2048, 4096, 512, 32}}) {
    const int N = sh.N, C = sh.C, OC = sh.OC, Rk = sh.Rk;
    const float scale = 2.0f;
    auto x = rand_vec(static_cast<size_t>(N) * C, 71), A = rand_vec(static_cast<size_t>(Rk) * C, 72, -0.1f, 0.1f);
    auto Bw = rand_vec(static_cast<size_t>(OC) * Rk, 73, -0.1f, 0.1f), out0 = rand_vec(static_cast<size_t>(N) * OC, 74);
    auto dout = rand_vec(static_cast<size_t>(N) * OC, 75);
    DevBuf xg(GPU, x), Ag(GPU, A), Bg(GPU, Bw), doutg(GPU, dout), scratch(GPU, static_cast<size_t>(N) * (C + Rk) * 4);
    auto inc = [](const std::vector<float>& a, const std::vector<float>& a0) {
      std::vector<float> r(a.size());
      for (size_t i = 0; i < a.size(); i++) r[i] = a[i] - a0[i];
      return r;
    };
    for (float p : {0.0f, 0.1f}) {
      std::vector<float> out_c = out0, u_c = nans(static_cast<size_t>(N) * Rk), scr(static_cast<size_t>(N) * (C + Rk));
      CPU.lora_forward(out_c.data(), u_c.data(), scr.data(), x.data(), A.data(), Bw.data(), scale, p, 99, N, C, OC, Rk, DType::F32);
      auto dx0 = rand_vec(static_cast<size_t>(N) * C, 76), dA0 = rand_vec(A.size(), 77), dB0 = rand_vec(Bw.size(), 78);
      std::vector<float> dx = dx0, dA = dA0, dB = dB0;
      CPU.lora_backward(dx.data(), dA.data(), dB.data(), scr.data(), dout.data(), x.data(), u_c.data(), A.data(), Bw.data(), scale, p,
                        99, N, C, OC, Rk, DType::F32);
      const std::string dims = " N=" + std::to_string(N) + " C=" + std::to_string(C) + " r=" + std::to_string(Rk) + " dropout=" + fmt(p);
      // One forward and backward on the current path into fresh buffers: out, u, dinp, dA, dB (each GPU output after
      // its op), and dA of a backward without dinp.
      auto run_gpu = [&](DType compute) {
        DevBuf out_g(GPU, out0), u_g(GPU, nans(static_cast<size_t>(N) * Rk));
        GPU.lora_forward(out_g.f(), u_g.f(), scratch.f(), xg.f(), Ag.f(), Bg.f(), scale, p, 99, N, C, OC, Rk, compute);
        DevBuf dx_g(GPU, dx0), dA_g(GPU, dA0), dB_g(GPU, dB0), ug(GPU, u_c);  // backward from the CPU's u
        GPU.lora_backward(dx_g.f(), dA_g.f(), dB_g.f(), scratch.f(), doutg.f(), xg.f(), ug.f(), Ag.f(), Bg.f(), scale, p, 99, N, C,
                          OC, Rk, compute);
        DevBuf dA_n(GPU, dA0), dB_n(GPU, dB0);  // dinp null (the first layer's q/k/v)
        GPU.lora_backward(nullptr, dA_n.f(), dB_n.f(), scratch.f(), doutg.f(), xg.f(), ug.f(), Ag.f(), Bg.f(), scale, p, 99, N, C,
                          OC, Rk, compute);
        return std::vector<std::vector<float>>{out_g.get(), u_g.get(), dx_g.get(), dA_g.get(), dB_g.get(), dA_n.get()};
      };
      std::vector<std::vector<float>> fp32_res;  // the cublas switch with fp32 compute (exact GEMMs)
      for (const Mode& m : modes) {
        qt::cuda::set_path("lora", m.path);
        const std::string tag = std::string(" [") + m.tag + "]" + dims;
        const auto g = run_gpu(m.compute);
        cmp(R, "ops", "lora_forward out increment" + tag, inc(out_c, out0), inc(g[0], out0), m.tol);
        cmp(R, "ops", "lora_forward u" + tag, u_c, g[1], m.tol);
        cmp(R, "ops", "lora_backward dinp increment" + tag, inc(dx, dx0), inc(g[2], dx0), m.tol);
        cmp(R, "ops", "lora_backward dA increment" + tag, inc(dA, dA0), inc(g[3], dA0), m.tol);
        cmp(R, "ops", "lora_backward dB increment" + tag, inc(dB, dB0), inc(g[4], dB0), m.tol);
        cmp(R, "ops", "lora_backward without dinp: dA increment" + tag, inc(dA, dA0), inc(g[5], dA0), m.tol);
        if (std::strcmp(m.tag, "cublas") == 0) fp32_res = g;
        if (m.compute != DType::BF16 || std::strcmp(m.path, "tf32") != 0) continue;
        cmp(R, "ops", "lora_forward u, lora_xa_tc (hi/lo bf16 tensor cores)" + tag, u_c, g[1], 1e-4);
        // Deterministic: the same inputs again give the same bits (training's resume == not stopping relies on it).
        // The detail says how far TF32 moved the result from the exact fp32 GEMMs (0: cuBLAS chose an fp32 kernel).
        const auto g2 = run_gpu(m.compute);
        bool same = true;
        for (size_t i = 0; i < g.size(); i++) same = same && bit_equal(g[i], g2[i]) && all_finite(g2[i]);
        R.check("ops", "lora tf32 bf16-compute: forward + backward twice give the same bits" + dims, same,
                std::string(same ? "bit-identical" : "NOT bit-identical") + "; u vs exact fp32 GEMMs: rel_l2 " +
                    fmt(rel_l2(fp32_res[1], g[1])));
      }
    }
  }
  restore_paths();
}

void check_cross_entropy(Report& R) {
  const int N = 48, V = 128256;
  auto logits = rand_vec(static_cast<size_t>(N) * V, 81, -4, 4);
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; n++) {
    targets[n] = n % 7 == 3 ? -1 : static_cast<int32_t>(qt::rng_u64(82, n) % V);
    logits[static_cast<size_t>(n) * V + (n * 131) % V] = 20.0f;  // a confident row now and then
  }
  DevBuf lg(GPU, logits), tg(GPU, targets);
  std::vector<float> loss_c = nans(N);
  DevBuf loss_g(GPU, nans(N));
  CPU.cross_entropy_forward(loss_c.data(), logits.data(), targets.data(), N, V);
  GPU.cross_entropy_forward(loss_g.f(), lg.f(), tg.as<int32_t>(), N, V);
  cmp(R, "ops", "cross_entropy_forward V=128256 (ignored rows)", loss_c, loss_g.get(), 1e-5);
  const float dloss = 1.0f / 41;
  std::vector<float> d_c = nans(logits.size());
  DevBuf d_g(GPU, nans(logits.size()));
  CPU.cross_entropy_backward(d_c.data(), logits.data(), targets.data(), dloss, N, V);
  GPU.cross_entropy_backward(d_g.f(), lg.f(), tg.as<int32_t>(), dloss, N, V);
  cmp(R, "ops", "cross_entropy_backward V=128256", d_c, d_g.get(), 1e-5);
  GPU.cross_entropy_backward(lg.f(), lg.f(), tg.as<int32_t>(), dloss, N, V);  // in place, as model.cpp does
  cmp(R, "ops", "cross_entropy_backward in place", d_c, lg.get(), 1e-5);
  // the fused op (training): in place as model.cpp calls it (float4 path), and out of place with an odd V (scalar path)
  lg.set(logits);
  DevBuf loss_f(GPU, nans(N));
  GPU.cross_entropy_fused(loss_f.f(), lg.f(), lg.f(), tg.as<int32_t>(), dloss, N, V);
  cmp(R, "ops", "cross_entropy_fused loss V=128256, in place", loss_c, loss_f.get(), 1e-5);
  cmp(R, "ops", "cross_entropy_fused dlogits V=128256, in place", d_c, lg.get(), 1e-5);
  const int V2 = 1003;
  auto l2 = rand_vec(static_cast<size_t>(N) * V2, 83, -30, 30);
  std::vector<int32_t> t2(N);
  for (int n = 0; n < N; n++) t2[n] = n % 5 == 1 ? -100 : static_cast<int32_t>(qt::rng_u64(84, n) % V2);
  std::vector<float> lc2 = nans(N), dc2 = nans(l2.size());
  CPU.cross_entropy_forward(lc2.data(), l2.data(), t2.data(), N, V2);
  CPU.cross_entropy_backward(dc2.data(), l2.data(), t2.data(), dloss, N, V2);
  DevBuf l2g(GPU, l2), t2g(GPU, t2), lf2(GPU, nans(N)), df2(GPU, nans(l2.size()));
  GPU.cross_entropy_fused(lf2.f(), df2.f(), l2g.f(), t2g.as<int32_t>(), dloss, N, V2);
  cmp(R, "ops", "cross_entropy_fused loss V=1003 (scalar path, ignored rows)", lc2, lf2.get(), 1e-5);
  cmp(R, "ops", "cross_entropy_fused dlogits V=1003", dc2, df2.get(), 1e-5);
}

void check_elementwise(Report& R) {
  const size_t n = (size_t{1} << 20) + 3;
  auto a = rand_vec(n, 91), b = rand_vec(n, 92);
  std::vector<float> out_c = nans(n);
  DevBuf ag(GPU, a), bg(GPU, b), out_g(GPU, nans(n));
  CPU.add(out_c.data(), a.data(), b.data(), n);
  GPU.add(out_g.f(), ag.f(), bg.f(), n);
  exact(R, "ops", "add", out_c, out_g.get());
  CPU.scale(out_c.data(), 0.37f, n);
  GPU.scale(out_g.f(), 0.37f, n);
  exact(R, "ops", "scale", out_c, out_g.get());
  const double sc = CPU.sum_squares(a.data(), n), sg = GPU.sum_squares(ag.f(), n);
  R.add("ops", "sum_squares (n = 2^20 + 3)", "rel", std::fabs(sc - sg) / sc, 1e-12, std::fabs(sc - sg) <= 1e-12 * sc);
  const double sg2 = GPU.sum_squares(ag.f(), n);
  R.check("ops", "sum_squares is deterministic", std::memcmp(&sg, &sg2, sizeof sg) == 0);
  // AdamW, three steps with weight decay: the same bits as the CPU
  const size_t P = 100003;
  auto p0 = rand_vec(P, 93), g = rand_vec(P, 94, -1e-2f, 1e-2f);
  std::vector<float> pc = p0, mc(P, 0.0f), vc(P, 0.0f);
  DevBuf pg(GPU, p0), gg(GPU, g), mg(GPU, mc), vg(GPU, vc);
  for (int t = 1; t <= 3; t++) {
    CPU.adamw_update(pc.data(), g.data(), mc.data(), vc.data(), P, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    GPU.adamw_update(pg.f(), gg.f(), mg.f(), vg.f(), P, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
  }
  exact(R, "ops", "adamw_update params (3 steps)", pc, pg.get());
  exact(R, "ops", "adamw_update exp_avg_sq", vc, vg.get());
}

// ---------------------------------------------------------------------------------------------------------
// nf4
// ---------------------------------------------------------------------------------------------------------

void check_nf4(Report& R) {
  struct Case {
    int rows, cols;
    DType src;
  };
  for (Case k : {Case{333, 1088, DType::BF16}, Case{256, 4096, DType::F16}, Case{7, 65, DType::F32}}) {
    const int64_t n = static_cast<int64_t>(k.rows) * k.cols, nb = (n + 63) / 64, ns = (nb + 255) / 256;
    auto w = rand_vec(static_cast<size_t>(n), 1000 + k.rows, -0.08f, 0.08f);
    for (int64_t i = 0; i < n; i += 997) w[static_cast<size_t>(i)] *= 9.0f;  // outliers: absmax varies by block
    WeightPair src(w, k.rows, k.cols, k.src, false);  // the stored dense values, on both sides
    std::vector<float> wf(static_cast<size_t>(n));
    qt::convert_to_f32(wf.data(), src.cpu.data, k.src, wf.size());
    const std::string tag = std::string(" ") + std::to_string(k.rows) + "x" + std::to_string(k.cols) + " from " + dtype_label(k.src);
    // CPU: the host quantizer (what the CPU loader runs)
    qt::Nf4Host q = qt::nf4_quantize(wf.data(), k.rows, k.cols, true);
    // GPU: the two backend ops, with the offset summed on the host as the loader does
    DevBuf codes(GPU, static_cast<size_t>((n + 1) / 2)), absmax(GPU, static_cast<size_t>(nb) * 4);
    GPU.nf4_quantize(codes.as<uint8_t>(), absmax.f(), src.gpu.data, k.src, n);
    auto am = absmax.get<float>();
    const float offset = qt::nf4_absmax_mean(am.data(), nb);
    DevBuf aq(GPU, static_cast<size_t>(nb)), sc(GPU, static_cast<size_t>(ns) * 4);
    GPU.nf4_double_quant(aq.as<uint8_t>(), sc.f(), absmax.f(), offset, nb);
    const auto gcodes = codes.get<uint8_t>(), gaq = aq.get<uint8_t>();
    const auto gsc = sc.get<float>();
    R.check("nf4", "quantize codes == CPU" + tag, gcodes == q.codes);
    R.check("nf4", "double-quant offset == CPU" + tag, offset == q.absmax_offset);
    R.check("nf4", "double-quant codes == CPU" + tag, gaq == q.absmax_q);
    R.check("nf4", "double-quant scales == CPU" + tag, gsc == q.absmax_scale);
    std::vector<float> plain_am = qt::nf4_quantize(wf.data(), k.rows, k.cols, false).absmax;
    R.check("nf4", "block absmax == CPU" + tag, bit_equal(plain_am, am));
    // dequantization: GPU == CPU == the §4 formula, bit for bit (code * (map[q] * scale + offset))
    qt::Weight wq;
    wq.dtype = DType::NF4;
    wq.rows = k.rows;
    wq.cols = k.cols;
    wq.double_quant = true;
    wq.data = codes.as<uint8_t>();
    wq.absmax_q = aq.as<uint8_t>();
    wq.absmax_scale = sc.f();
    wq.absmax_offset = offset;
    DevBuf deq(GPU, nans(static_cast<size_t>(n)));
    GPU.dequantize(deq.f(), wq);
    std::vector<float> cpu_deq = nans(static_cast<size_t>(n));
    qt::Weight wc = wq;
    wc.data = q.codes.data();
    wc.absmax_q = q.absmax_q.data();
    wc.absmax_scale = q.absmax_scale.data();
    wc.absmax_offset = q.absmax_offset;
    CPU.dequantize(cpu_deq.data(), wc);
    std::vector<float> formula(static_cast<size_t>(n));
    const float* map = qt::dynamic_map();
    for (int64_t i = 0; i < n; i++) {
      const uint8_t byte = q.codes[static_cast<size_t>(i / 2)];
      const int idx = i % 2 == 0 ? byte >> 4 : byte & 15;
      const int64_t b = i / 64;
      volatile float t1 = map[q.absmax_q[static_cast<size_t>(b)]] * q.absmax_scale[static_cast<size_t>(b / 256)];  // no FMA
      volatile float absmax_b = t1 + q.absmax_offset;
      formula[static_cast<size_t>(i)] = qt::kNf4Codes[idx] * absmax_b;
    }
    const auto gdeq = deq.get();
    exact(R, "nf4", "dequantize (GPU) == ENGINE_FACTS §4 formula" + tag, formula, gdeq);
    exact(R, "nf4", "dequantize (CPU) == ENGINE_FACTS §4 formula" + tag, formula, cpu_deq);
    // without double quantization
    qt::Weight wp = wq;
    wp.double_quant = false;
    DevBuf amg(GPU, plain_am);
    wp.absmax = amg.f();
    DevBuf deq2(GPU, nans(static_cast<size_t>(n)));
    GPU.dequantize(deq2.f(), wp);
    std::vector<float> f2(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
      const uint8_t byte = q.codes[static_cast<size_t>(i / 2)];
      f2[static_cast<size_t>(i)] = qt::kNf4Codes[i % 2 == 0 ? byte >> 4 : byte & 15] * plain_am[static_cast<size_t>(i / 64)];
    }
    exact(R, "nf4", "dequantize without double quant == formula" + tag, f2, deq2.get());
  }
}

// ---------------------------------------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------------------------------------

std::shared_ptr<qt::Model> load(const std::string& dir, const std::string& device, qt::Quant q, const std::string& compute) {
  qt::LoadOptions o;
  o.folder = dir;
  o.device = device;
  o.quant = q;
  o.compute_dtype = compute;
  return qt::load_model(o);
}

// An adapter with PEFT's A and a random nonzero B, identical on both models.
std::shared_ptr<qt::Adapter> random_adapter(const std::shared_ptr<qt::Model>& m, int r, uint64_t seed) {
  qt::LoraConfig lc;
  lc.r = r;
  lc.alpha = 16;
  lc.dropout = 0;
  lc.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  auto ad = qt::create_adapter(m, lc);
  std::vector<float> host(ad->layout.num_params);
  m->be->download(host.data(), ad->params.get(), host.size() * 4);
  for (size_t l = 0; l < ad->layout.slots.size(); l++)
    for (int t = 0; t < qt::NUM_TARGETS; t++) {
      const auto& s = ad->layout.slots[l][static_cast<size_t>(t)];
      if (!s.on) continue;
      for (size_t i = 0; i < static_cast<size_t>(s.out) * r; i++) host[s.b + i] = 0.05f * (2 * qt::rng_uniform(seed + l * 7 + t, i) - 1);
    }
  m->be->upload(ad->params.get(), host.data(), host.size() * 4);
  return ad;
}

void check_model(Report& R, const std::string& tmp) {
  struct MCase {
    const char* name;
    qtest::TinySpec spec;
  };
  qtest::TinySpec llama;
  llama.vocab = 512;
  llama.hidden = 128;
  llama.ffn = 256;
  llama.heads = 4;
  llama.kv_heads = 2;
  llama.llama3_rope = true;
  llama.rope_theta = 500000;
  qtest::TinySpec qwen = llama;
  qwen.arch = "Qwen2ForCausalLM";
  qwen.tied = true;
  qwen.seed = 7;
  qwen.llama3_rope = false;
  qtest::TinySpec wide = llama;  // head size 64, MQA
  wide.hidden = 256;
  wide.heads = 4;
  wide.kv_heads = 1;
  wide.seed = 9;
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; i++) ids.push_back(static_cast<int32_t>(qt::rng_u64(5, i) % 500));
  for (const MCase& mc : {MCase{"llama3 GQA", llama}, MCase{"qwen2 biases tied", qwen}, MCase{"HS=64 MQA", wide}}) {
    const std::string dir = tmp + "/model_" + std::to_string(mc.spec.seed) + "_" + std::to_string(mc.spec.hidden);
    qtest::write_tiny_model(dir, mc.spec);
    const std::string tag = std::string(" [") + mc.name + "]";
    R.guard("model", std::string("load and compare") + tag, [&] {
      auto mc_ = load(dir, "cpu", qt::Quant::NF4, "auto");
      auto mg = load(dir, "cuda:0", qt::Quant::NF4, "fp32");
      auto mb = load(dir, "cuda:0", qt::Quant::NF4, "bf16");
      bool same = true;
      for (int l = 0; l < mc.spec.layers; l++)
        for (int t = 0; t < qt::NUM_TARGETS; t++)
          same = same && bit_equal(qt::model_weight_fp32(*mc_, qt::layer_weight_name(l, t)), qt::model_weight_fp32(*mg, qt::layer_weight_name(l, t)));
      R.check("model", "NF4+DQ weights quantized on the GPU == CPU" + tag, same);
      auto ac = random_adapter(mc_, 8, 3), ag = random_adapter(mg, 8, 3), ab = random_adapter(mb, 8, 3);
      auto lc = qt::forward_logits(mc_, ac.get(), ids);
      cmp(R, "model", "forward_logits fp32 compute, LoRA" + tag, lc, qt::forward_logits(mg, ag.get(), ids), 1e-4);
      cmp(R, "model", "forward_logits bf16 compute, LoRA" + run3_tags(true, false) + tag, lc, qt::forward_logits(mb, ab.get(), ids), 2e-2);
      qt::cuda::set_path("attn", "simt");
      cmp(R, "model", "forward_logits bf16 compute, LoRA, QT_CUDA_ATTN=simt" + tag, lc, qt::forward_logits(mb, ab.get(), ids), 2e-2);
      restore_paths();
      {  // bf16 compute: decode steps (GEMV, exact fp32 products) against the bf16 full forward
        auto fullb = qt::forward_logits(mb, ab.get(), ids);
        qt::Decoder decb(mb, ab.get(), static_cast<int>(ids.size()));
        const int Vb = mc.spec.vocab;
        double worstb = 0;
        auto rowb = [&](const std::vector<float>& got, int pos) {
          std::vector<float> ref(fullb.begin() + static_cast<long>(pos) * Vb, fullb.begin() + static_cast<long>(pos + 1) * Vb);
          worstb = std::max(worstb, rel_l2(ref, got));
        };
        rowb(decb.feed(ids.data(), 30, nullptr), 29);
        for (int i = 30; i < static_cast<int>(ids.size()); i++) rowb(decb.feed(&ids[static_cast<size_t>(i)], 1, nullptr), i);
        R.add("model", "KV-cached decode ~ full forward (GPU, bf16 compute: GEMV + decode attention)" + run3_tags(true) + tag, "rel_l2", worstb, 2e-2,
              worstb <= 2e-2);
      }
      // KV cache on the GPU against full recomputation on the GPU
      auto full = qt::forward_logits(mg, ag.get(), ids);
      const int V = mc.spec.vocab;
      qt::Decoder dec(mg, ag.get(), static_cast<int>(ids.size()));
      double worst = 0;
      auto row = [&](const std::vector<float>& got, int pos) {
        std::vector<float> ref(full.begin() + static_cast<long>(pos) * V, full.begin() + static_cast<long>(pos + 1) * V);
        worst = std::max(worst, rel_l2(ref, got));
      };
      row(dec.feed(ids.data(), 30, nullptr), 29);
      for (int i = 30; i < static_cast<int>(ids.size()); i++) row(dec.feed(&ids[static_cast<size_t>(i)], 1, nullptr), i);
      R.add("model", "KV-cached decode == full forward (GPU)" + run3_tags(false) + tag, "rel_l2", worst, 1e-5, worst <= 1e-5);
      {  // programmatic dependent launch of the decode kernels (QT_CUDA_PDL): each kernel waits for the one before it, so
         // the steps' logits are the same bits with it on and off (bf16 compute: GEMV, decode attention, rows kernels)
        std::vector<float> steps[3];
        std::vector<int32_t> greedy[3];
        for (int mode = 0; mode < 3; mode++) {
          qt::cuda::set_path("pdl", std::to_string(mode));
          qt::Decoder d(mb, ab.get(), static_cast<int>(ids.size()));
          auto add = [&](const std::vector<float>& v) { steps[mode].insert(steps[mode].end(), v.begin(), v.end()); };
          add(d.feed(ids.data(), 30, nullptr));
          for (int i = 30; i < static_cast<int>(ids.size()); i++) add(d.feed(&ids[static_cast<size_t>(i)], 1, nullptr));
          qt::Decoder dg(mb, ab.get(), static_cast<int>(ids.size()));  // the greedy steps' argmax (on the GPU)
          greedy[mode].push_back(dg.feed_greedy(ids.data(), 30, nullptr));
          for (int i = 30; i < static_cast<int>(ids.size()); i++) greedy[mode].push_back(dg.feed_greedy(&ids[static_cast<size_t>(i)], 1, nullptr));
        }
        restore_paths();
        R.check("model", "decode steps with PDL (both trigger points) == without, bit for bit [pdl]" + tag,
                bit_equal(steps[0], steps[1]) && bit_equal(steps[0], steps[2]));
        R.check("model", "greedy argmax on the GPU with PDL == without [pdl]" + tag, greedy[0] == greedy[1] && greedy[0] == greedy[2]);
        // and it is the host's argmax of the downloaded logits
        bool host_same = true;
        const int Vb = mc.spec.vocab;
        for (size_t k = 0; k < greedy[0].size(); k++) {
          const float* r = steps[0].data() + k * static_cast<size_t>(Vb);
          host_same = host_same && greedy[0][k] == static_cast<int32_t>(std::max_element(r, r + Vb) - r);
        }
        R.check("model", "greedy argmax on the GPU == the host's argmax of the logits" + tag, host_same);
      }
      qt::SamplingConfig s;
      s.max_new_tokens = 24;
      auto gc = qt::generate(mc_, ac.get(), std::vector<int32_t>(ids.begin(), ids.begin() + 8), s, nullptr, nullptr);
      auto gg = qt::generate(mg, ag.get(), std::vector<int32_t>(ids.begin(), ids.begin() + 8), s, nullptr, nullptr);
      R.check("model", "greedy generation CPU == GPU (fp32 compute)" + run3_tags(false) + tag, gc.tokens == gg.tokens);
    });
  }
  R.guard("model", "unquantized bf16 base", [&] {
    const std::string dir = tmp + "/model_" + std::to_string(llama.seed) + "_" + std::to_string(llama.hidden);
    auto mc_ = load(dir, "cpu", qt::Quant::None, "auto");
    auto mg = load(dir, "cuda:0", qt::Quant::None, "fp32");
    auto mem = qt::model_memory(*mg);
    R.check("model", "Quant::None keeps the stored bf16 linears on the GPU", mem.weights_bytes < qt::model_memory(*mc_).weights_bytes);
    cmp(R, "model", "forward_logits Quant::None fp32 compute", qt::forward_logits(mc_, nullptr, ids), qt::forward_logits(mg, nullptr, ids), 1e-5);
  });
}

// ---------------------------------------------------------------------------------------------------------
// train
// ---------------------------------------------------------------------------------------------------------

std::vector<float> params_of(const qt::Trainer& t) {
  auto ad = qt::trainer_adapter(t);
  std::vector<float> out(ad->layout.num_params);
  ad->model->be->download(out.data(), ad->params.get(), out.size() * 4);
  return out;
}

qt::TrainConfig train_config() {
  qt::TrainConfig c;
  c.lora.r = 8;
  c.lora.alpha = 16;
  c.lora.dropout = 0.1f;
  c.lora.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  c.lr = 2e-3f;
  c.weight_decay = 0.01f;
  c.grad_accum = 2;
  c.batch_rows = 4;
  c.total_steps = 100;
  c.warmup_steps = 2;
  c.neftune_alpha = 5;
  c.grad_checkpointing = true;
  c.seed = 11;
  return c;
}

void check_train(Report& R, const std::string& tmp) {
  qtest::TinySpec s;
  s.vocab = 512;
  s.hidden = 128;
  s.ffn = 256;
  s.heads = 4;
  s.kv_heads = 2;
  s.seed = 21;
  const std::string dir = tmp + "/train_model";
  qtest::write_tiny_model(dir, s);
  const std::string set = tmp + "/train.qtds";
  qtest::write_qtds(set, qtest::random_samples(24, 8, 40, s.vocab, 5), s.vocab);
  auto mc_ = load(dir, "cpu", qt::Quant::NF4, "auto");
  auto mg = load(dir, "cuda:0", qt::Quant::NF4, "fp32");
  auto mb = load(dir, "cuda:0", qt::Quant::NF4, "bf16");

  struct TCase {
    const char* name;
    bool token_budget, checkpointing;
  };
  // the trainers below reuse converted weights when QT_DEQUANT_REUSE is not 0 (small batches: auto on): tagged
  const char* reuse_env = std::getenv("QT_DEQUANT_REUSE");
  const std::string reuse = reuse_env && std::strcmp(reuse_env, "0") == 0 ? "" : " [reuse]";
  for (TCase tc : {TCase{"fixed rows, checkpointing", false, true}, TCase{"token budget, no checkpointing", true, false}}) {
    const std::string tag = std::string(" [") + tc.name + "]" + (tc.checkpointing ? reuse : "");
    R.guard("train", std::string("CPU vs GPU") + tag, [&] {
      qt::TrainConfig c = train_config();
      c.token_budget_batching = tc.token_budget;
      c.token_budget = 96;
      c.grad_checkpointing = tc.checkpointing;
      auto tcpu = qt::create_trainer(mc_, c, set), tgpu = qt::create_trainer(mg, c, set), tbf = qt::create_trainer(mb, c, set);
      double worst_loss = 0, worst_norm = 0, worst_bf = 0;
      for (int i = 0; i < 4; i++) {
        auto a = qt::trainer_step(*tcpu, nullptr), b = qt::trainer_step(*tgpu, nullptr), d = qt::trainer_step(*tbf, nullptr);
        worst_loss = std::max(worst_loss, std::fabs(static_cast<double>(a.loss) - b.loss) / std::fabs(a.loss));
        worst_norm = std::max(worst_norm, std::fabs(static_cast<double>(a.grad_norm) - b.grad_norm) / std::fabs(a.grad_norm));
        worst_bf = std::max(worst_bf, std::fabs(static_cast<double>(a.loss) - d.loss) / std::fabs(a.loss));
      }
      R.add("train", "4 steps: loss CPU vs GPU fp32 compute" + tag, "rel", worst_loss, 1e-4, worst_loss <= 1e-4);
      R.add("train", "4 steps: grad norm CPU vs GPU fp32 compute" + tag, "rel", worst_norm, 1e-3, worst_norm <= 1e-3);
      cmp(R, "train", "4 steps: LoRA params CPU vs GPU fp32 compute" + tag, params_of(*tcpu), params_of(*tgpu), 1e-4);
      R.add("train", "4 steps: loss CPU vs GPU bf16 compute" + tag, "rel", worst_bf, 2e-2, worst_bf <= 2e-2);
      const double ec = qt::trainer_evaluate(*tcpu, set, nullptr), eg = qt::trainer_evaluate(*tgpu, set, nullptr);
      R.add("train", "evaluate CPU vs GPU" + tag, "rel", std::fabs(ec - eg) / ec, 1e-4, std::fabs(ec - eg) <= 1e-4 * ec);
    });
  }
  for (auto m : {mg, mb}) {
    const std::string tag = (m->compute == DType::F32 ? " [fp32 compute]" : " [bf16 compute]") + reuse;
    R.guard("train", "resume" + tag, [&] {
      qt::TrainConfig c = train_config();
      auto a = qt::create_trainer(m, c, set);
      std::vector<qt::StepMetrics> ma;
      for (int i = 0; i < 4; i++) ma.push_back(qt::trainer_step(*a, nullptr));
      auto b = qt::create_trainer(m, c, set);
      qt::trainer_step(*b, nullptr);
      qt::trainer_step(*b, nullptr);
      const std::string ck = tmp + "/ckpt" + std::to_string(static_cast<int>(m->compute));
      qt::trainer_save_checkpoint(*b, ck);
      b.reset();
      auto r = qt::create_trainer(m, c, set);
      qt::trainer_load_checkpoint(*r, ck);
      auto m3 = qt::trainer_step(*r, nullptr), m4 = qt::trainer_step(*r, nullptr);
      R.check("train", "resume == not stopping: losses bit-identical" + tag, m3.loss == ma[2].loss && m4.loss == ma[3].loss);
      exact(R, "train", "resume == not stopping: LoRA params" + tag, params_of(*a), params_of(*r));
      auto a2 = qt::create_trainer(m, c, set);
      for (int i = 0; i < 4; i++) qt::trainer_step(*a2, nullptr);
      exact(R, "train", "two identical runs give the same bits" + tag, params_of(*a), params_of(*a2));
    });
  }
  // The tutorial's adapter (q/k/v/o) on bf16 compute: the MLP keeps its intermediates in bf16 (model.cpp mlp_in_bf16;
  // QT_MLP_BF16=0 keeps fp32). Against the CPU and the fp32-MLP trainer within bf16 tolerance; twice the same bits.
  R.guard("train", "bf16 MLP [bf16 compute]" + reuse, [&] {
    qt::TrainConfig c = train_config();
    c.lora.targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
    const char* prev = std::getenv("QT_MLP_BF16");
    const std::string prev_s = prev ? prev : "";
    unsetenv("QT_MLP_BF16");
    auto on = qt::create_trainer(mb, c, set), on2 = qt::create_trainer(mb, c, set);
    setenv("QT_MLP_BF16", "0", 1);
    auto off = qt::create_trainer(mb, c, set);
    if (prev) setenv("QT_MLP_BF16", prev_s.c_str(), 1);
    else unsetenv("QT_MLP_BF16");
    auto cpu = qt::create_trainer(mc_, c, set);
    double worst_off = 0, worst_cpu = 0;
    bool same = true, ran = false, ran_off = false;
    for (int i = 0; i < 4; i++) {
      qt::StepMetrics a;
      ran = ran_section("matmul_forward_t", [&] { a = qt::trainer_step(*on, nullptr); }) || ran;
      qt::StepMetrics b;
      ran_off = ran_section("matmul_forward_t", [&] { b = qt::trainer_step(*off, nullptr); }) || ran_off;
      const auto a2 = qt::trainer_step(*on2, nullptr), d = qt::trainer_step(*cpu, nullptr);
      same = same && a.loss == a2.loss;
      worst_off = std::max(worst_off, std::fabs(static_cast<double>(a.loss) - b.loss) / std::fabs(b.loss));
      worst_cpu = std::max(worst_cpu, std::fabs(static_cast<double>(a.loss) - d.loss) / std::fabs(d.loss));
    }
    R.check("train", "bf16 MLP: the path runs (matmul_forward_t), and not with QT_MLP_BF16=0", ran && !ran_off);
    R.add("train", "bf16 MLP: 4 steps' loss vs fp32 MLP (same GPU)", "rel", worst_off, 1e-2, worst_off <= 1e-2);
    R.add("train", "bf16 MLP: 4 steps' loss vs CPU", "rel", worst_cpu, 2e-2, worst_cpu <= 2e-2);
    cmp(R, "train", "bf16 MLP: LoRA params after 4 steps vs fp32 MLP", params_of(*off), params_of(*on), 5e-2);
    cmp(R, "train", "bf16 MLP: LoRA params after 4 steps vs CPU", params_of(*cpu), params_of(*on), 5e-2);
    R.check("train", "bf16 MLP: two identical runs give the same losses", same);
    exact(R, "train", "bf16 MLP: two identical runs give the same LoRA params", params_of(*on), params_of(*on2));
  });
  // Converted-weight reuse (QT_DEQUANT_REUSE, Backend::keep_weights): a checkpointed layer's backward multiplies the
  // copies its recomputation converted. The same bits as converting again, and fewer conversions (down_proj only).
  const std::string saved = reuse_env ? reuse_env : "";
  for (auto m : {mb, mg}) {
    const std::string tag = std::string(" [reuse]") + (m->compute == DType::F32 ? " [fp32 compute]" : " [bf16 compute]");
    R.guard("train", "dequant reuse" + tag, [&] {
      qt::TrainConfig c = train_config();
      setenv("QT_DEQUANT_REUSE", "1", 1);
      auto on = qt::create_trainer(m, c, set);
      setenv("QT_DEQUANT_REUSE", "0", 1);
      auto off = qt::create_trainer(m, c, set);
      if (reuse_env) setenv("QT_DEQUANT_REUSE", saved.c_str(), 1);
      else unsetenv("QT_DEQUANT_REUSE");
      bool same_loss = true;
      for (int i = 0; i < 3; i++) same_loss = same_loss && qt::trainer_step(*on, nullptr).loss == qt::trainer_step(*off, nullptr).loss;
      R.check("train", "dequant reuse on == off: 3 steps' losses bit-identical" + tag, same_loss);
      exact(R, "train", "dequant reuse on == off: LoRA params after 3 steps" + tag, params_of(*on), params_of(*off));
      int conv[2] = {0, 0};
      for (int k = 0; k < 2; k++) {
        qt::cuda::profile_begin();
        qt::trainer_step(k == 0 ? *on : *off, nullptr);
        for (const auto& e : qt::cuda::profile_end())
          if (e.name == "matmul.dequantize") conv[k] = e.calls;
      }
      // Per micro-batch and layer: off converts 7 + 6 + 7 weights (forward, recomputation, backward), on 7 + 6 + 1. Run 3
      // (H200) measured 74 -> 56 on 2 layers x 2 micro-batches: 18 fewer, not the 24 that model predicts, so one
      // (layer, micro-batch) converts again; not yet explained, which is why the reuse is off by default. Checked here:
      // it converts strictly fewer weights and (above) changes no bit.
      R.check("train", "dequant reuse: fewer weight conversions than without" + tag,
              conv[0] < conv[1], std::to_string(conv[0]) + " with, " + std::to_string(conv[1]) + " without");
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// errors and devices
// ---------------------------------------------------------------------------------------------------------

// Takes nearly all free device memory (chunks until cudaMalloc fails); released on destruction.
struct Blocker {
  std::vector<void*> chunks;
  Blocker() {
    for (size_t chunk : {size_t{1} << 30, size_t{64} << 20, size_t{4} << 20}) {
      for (;;) {
        try {
          chunks.push_back(GPU.alloc(chunk));
        } catch (const qt::Error&) {
          break;
        }
      }
    }
  }
  ~Blocker() {
    for (void* p : chunks) GPU.free(p);
  }
};

bool message_has(const qt::Error& e, const std::string& s) { return std::string(e.what()).find(s) != std::string::npos; }

// fn must throw qt::Error with `code` and a message containing `part`.
template <class F>
void expect_error(Report& R, const std::string& name, qt::ErrorCode code, const std::string& part, F&& fn) {
  try {
    fn();
    R.check("errors", name, false, "no error was thrown");
  } catch (const qt::Error& e) {
    R.check("errors", name, e.code() == code && message_has(e, part), std::string(qt::error_code_name(e.code())) + ": " + e.what());
  }
}

void check_errors(Report& R, const std::string& tmp) {
  R.guard("errors", "devices", [&] {
    auto devs = qt::list_devices();
    const qt::DeviceInfo* d = nullptr;
    for (const auto& x : devs)
      if (x.backend == "cuda" && !d) d = &x;
    R.check("errors", "list_devices has a CUDA device", d != nullptr);
    if (d) {
      R.check("errors", "device info: name, memory, compute capability, bf16",
              !d->name.empty() && d->total_bytes > (1ull << 30) && d->free_bytes > 0 && d->free_bytes <= d->total_bytes && d->cc_major >= 7 &&
                  d->bf16 == (d->cc_major >= 8),
              d->name + " cc " + std::to_string(d->cc_major) + "." + std::to_string(d->cc_minor) + ", " +
                  std::to_string(d->total_bytes >> 20) + " MiB");
    }
    auto be = qt::compiled_backends();
    R.check("errors", "compiled_backends lists cuda", std::find(be.begin(), be.end(), "cuda") != be.end());
  });
  qtest::TinySpec s;  // big enough that a long batch cannot fit, small enough to write quickly
  s.vocab = 32000;
  s.hidden = 2048;
  s.ffn = 5632;
  s.layers = 1;
  s.heads = 16;
  s.kv_heads = 4;
  s.max_pos = 8192;
  s.seed = 31;
  const std::string dir = tmp + "/oom_model";
  qtest::write_tiny_model(dir, s);
  qt::cuda::release_workspace();  // measure leaks against the engine's memory without the op scratch
  const uint64_t base_mem = qt::cuda::memory_stats(0).current;
  expect_error(R, "device cuda:99 -> InvalidArgument", qt::ErrorCode::InvalidArgument, "does not exist",
               [&] { load(dir, "cuda:99", qt::Quant::NF4, "auto"); });
  R.guard("errors", "out of memory in training", [&] {
    auto m = load(dir, "cuda:0", qt::Quant::NF4, "auto");
    const std::string big = tmp + "/long.qtds", small = tmp + "/short.qtds";
    qtest::write_qtds(big, qtest::random_samples(128, 8192, 8192, s.vocab, 3), s.vocab);
    qtest::write_qtds(small, qtest::random_samples(8, 16, 64, s.vocab, 4), s.vocab);
    qt::TrainConfig c = train_config();
    c.batch_rows = 128;
    const uint64_t before = qt::cuda::memory_stats(0).current;
    expect_error(R, "128 x 8192 tokens -> OutOfMemory with a plain message", qt::ErrorCode::OutOfMemory,
                 "GPU out of memory at 128 \xC3\x97 8192 tokens; lower the batch size", [&] {
                   auto t = qt::create_trainer(m, c, big);
                   qt::trainer_step(*t, nullptr);
                 });
    R.add("errors", "no memory kept after the failed trainer", "MiB", static_cast<double>(qt::cuda::memory_stats(0).current - before) / (1 << 20),
          0, qt::cuda::memory_stats(0).current == before);
    c.batch_rows = 4;
    auto t = qt::create_trainer(m, c, small);
    auto st = qt::trainer_step(*t, nullptr);
    R.check("errors", "the same model trains after the out-of-memory error", std::isfinite(st.loss) && st.loss > 0, "loss " + fmt(st.loss));
  });
  R.guard("errors", "out of memory while loading", [&] {
    {
      Blocker block;
      expect_error(R, "load on a full GPU -> OutOfMemory with a plain message", qt::ErrorCode::OutOfMemory,
                   "GPU out of memory loading the model", [&] { load(dir, "cuda:0", qt::Quant::NF4, "auto"); });
    }
    auto m = load(dir, "cuda:0", qt::Quant::NF4, "auto");
    auto lg = qt::forward_logits(m, nullptr, {1, 2, 3, 4});
    R.check("errors", "loading works again once memory is free", all_finite(lg));
  });
  R.guard("errors", "out of memory while generating", [&] {
    auto m = load(dir, "cuda:0", qt::Quant::NF4, "auto");
    std::vector<int32_t> prompt;
    for (int i = 0; i < 6000; i++) prompt.push_back(static_cast<int32_t>(qt::rng_u64(8, i) % s.vocab));
    qt::SamplingConfig sc;
    sc.max_new_tokens = 100;
    {
      Blocker block;
      expect_error(R, "generate on a full GPU -> OutOfMemory with a plain message", qt::ErrorCode::OutOfMemory,
                   "GPU out of memory for a context of", [&] { qt::generate(m, nullptr, prompt, sc, nullptr, nullptr); });
    }
    sc.max_new_tokens = 8;
    auto r = qt::generate(m, nullptr, std::vector<int32_t>(prompt.begin(), prompt.begin() + 20), sc, nullptr, nullptr);
    R.check("errors", "generation works again once memory is free", r.tokens.size() == 8);
  });
  R.guard("errors", "threads", [&] {
    auto m = load(dir, "cuda:0", qt::Quant::NF4, "auto");
    qt::MemoryReport rep;
    std::thread th([&] { rep = qt::model_memory(*m); });
    th.join();
    R.check("errors", "model_memory from another thread reports the GPU", rep.device_total_bytes > 0 && rep.weights_bytes > 0 &&
                                                                               rep.device_total_bytes != qt::list_devices()[0].total_bytes);
    std::vector<float> lg;
    std::thread th2([&] { lg = qt::forward_logits(m, nullptr, {5, 6, 7}); });
    th2.join();
    R.check("errors", "a call from a fresh thread runs on the model's device", all_finite(lg) && !lg.empty());
  });
  qt::cuda::release_workspace();
  const uint64_t after = qt::cuda::memory_stats(0).current;
  R.add("errors", "engine memory back to where it started (models freed)", "MiB", (static_cast<double>(after) - base_mem) / (1 << 20), 0,
        after == base_mem);
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, only;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
  }
  auto want = [&](const char* g) { return only.empty() || ("," + only + ",").find(std::string(",") + g + ",") != std::string::npos; };
  Report R("gpu_check");
  GPUP = qt::cuda_backend();
  if (!GPUP) {
    std::printf("this build has no CUDA backend\n");
    return 1;
  }
  namespace fs = std::filesystem;
  const std::string tmp = (fs::temp_directory_path() / ("qt-gpu-check-" + std::to_string(::getpid()))).string();
  fs::create_directories(tmp);
  try {
    GPU.set_device(0);
  } catch (const qt::Error& e) {
    std::printf("FAIL cannot use cuda:0: %s\n", e.what());
    return 1;
  }
  std::printf("fast paths (defaults from the environment): %s\n", qt::cuda::active_paths().c_str());
  const auto t0 = Clock::now();
  auto section = [&](const char* name, auto fn) {
    if (!want(name)) return;
    const auto ts = Clock::now();
    std::printf("---- %s\n", name);
    std::fflush(stdout);
    fn();
    std::printf("---- %s done in %.1f s\n", name, seconds_since(ts));
  };
  section("ops", [&] {
    R.guard("ops", "embedding", [&] { check_embedding(R); });
    R.guard("ops", "neftune", [&] { check_neftune(R); });
    R.guard("ops", "rmsnorm", [&] { check_rmsnorm(R); });
    R.guard("ops", "rope", [&] { check_rope(R); });
    R.guard("ops", "decode fusions", [&] { check_decode_fusions(R); });
    R.guard("ops", "attention", [&] { check_attention(R); });
    R.guard("ops", "swiglu", [&] { check_swiglu(R); });
    R.guard("ops", "matmul", [&] { check_matmul(R); });
    R.guard("ops", "gemv", [&] { check_gemv(R); });
    R.guard("ops", "bf16 storage", [&] { check_bf16_storage(R); });
    R.guard("ops", "xcache", [&] { check_xcache(R); });
    R.guard("ops", "bf16 MLP ops", [&] { check_bf16_mlp_ops(R); });
    R.guard("ops", "lora", [&] { check_lora(R); });
    R.guard("ops", "cross_entropy", [&] { check_cross_entropy(R); });
    R.guard("ops", "elementwise", [&] { check_elementwise(R); });
  });
  section("nf4", [&] {
    R.guard("nf4", "nf4", [&] { check_nf4(R); });
    R.guard("nf4", "dequant paths", [&] { check_dequant_paths(R); });
  });
  section("model", [&] { R.guard("model", "model", [&] { check_model(R, tmp); }); });
  section("train", [&] { R.guard("train", "train", [&] { check_train(R, tmp); }); });
  section("errors", [&] { R.guard("errors", "errors", [&] { check_errors(R, tmp); }); });
  std::error_code ec;
  fs::remove_all(tmp, ec);
  std::printf("gpu_check took %.1f s\n", seconds_since(t0));
  auto devs = qt::list_devices();
  qt::json::Value extra = qt::json::Value::new_object();
  extra.set("paths", qt::json::Value::from_string(qt::cuda::active_paths()));
  for (const auto& d : devs)
    if (d.backend == "cuda") {
      extra.set("device", qt::json::Value::from_string(d.name));
      break;
    }
  if (!json_path.empty()) R.write_json(json_path, std::move(extra));
  R.print_summary();
  return std::min(R.failures(), 255);
}
