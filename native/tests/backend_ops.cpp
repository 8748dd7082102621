// Backend conformance runner (see backend_ops.h).
#include "backend_ops.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

#include "engine.h"
#include "nf4.h"
#include "rng.h"

namespace qtest {

namespace {

std::vector<float> rnd(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * qt::rng_uniform(seed, i);
  return v;
}

// Device copies of host data on one backend, freed at the end of the case.
class Dev {
 public:
  explicit Dev(const qt::Backend& be) : be_(be) {}
  ~Dev() {
    for (void* p : allocs_) be_.free(p);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  template <class T>
  T* put(const std::vector<T>& host) {
    void* p = be_.alloc(std::max<size_t>(1, host.size() * sizeof(T)));
    allocs_.push_back(p);
    if (!host.empty()) be_.upload(p, host.data(), host.size() * sizeof(T));
    return static_cast<T*>(p);
  }
  std::vector<float> get(const float* d, size_t n) {
    std::vector<float> h(n);
    be_.download(h.data(), d, n * sizeof(float));
    return h;
  }
  const qt::Backend& be() const { return be_; }

 private:
  const qt::Backend& be_;
  std::vector<void*> allocs_;
};

// A frozen weight in a given dtype, as host bytes (+ NF4 statistics).
struct HostWeight {
  qt::DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  qt::Nf4Host nf4;
};

HostWeight make_weight(qt::DType dt, int rows, int cols, uint64_t seed, bool dq = true) {
  HostWeight w{dt, rows, cols, {}, {}};
  auto v = rnd(static_cast<size_t>(rows) * cols, seed);
  if (dt == qt::DType::F32) {
    w.bytes.resize(v.size() * 4);
    std::memcpy(w.bytes.data(), v.data(), w.bytes.size());
  } else if (dt == qt::DType::F16 || dt == qt::DType::BF16) {
    w.bytes.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); i++) {
      uint16_t h = dt == qt::DType::F16 ? qt::f32_to_f16(v[i]) : qt::f32_to_bf16(v[i]);
      std::memcpy(&w.bytes[i * 2], &h, 2);
    }
  } else {
    w.nf4 = qt::nf4_quantize(v.data(), rows, cols, dq);
  }
  return w;
}

qt::Weight upload_weight(Dev& d, const HostWeight& h) {
  qt::Weight w;
  w.dtype = h.dtype;
  w.rows = h.rows;
  w.cols = h.cols;
  if (h.dtype != qt::DType::NF4) {
    w.data = d.put(h.bytes);
    return w;
  }
  w.data = d.put(h.nf4.codes);
  w.double_quant = h.nf4.double_quant;
  if (h.nf4.double_quant) {
    w.absmax_q = d.put(h.nf4.absmax_q);
    w.absmax_scale = d.put(h.nf4.absmax_scale);
    w.absmax_offset = h.nf4.absmax_offset;
  } else {
    w.absmax = d.put(h.nf4.absmax);
  }
  return w;
}

using Outputs = std::vector<std::vector<float>>;
using Case = std::function<Outputs(Dev&)>;

void compare(OpsReport& rep, const std::string& name, const Case& c, const qt::Backend& ref, const qt::Backend& test,
             double rtol, double atol) {
  Outputs a, b;
  {
    Dev d(ref);
    a = c(d);
  }
  try {
    Dev d(test);
    b = c(d);
  } catch (const std::exception& e) {
    rep.failures.push_back(name + ": threw " + e.what());
    return;
  }
  rep.checked++;
  for (size_t k = 0; k < a.size(); k++) {
    double worst = 0;
    size_t at = 0;
    bool bad = a[k].size() != b[k].size();
    for (size_t i = 0; !bad && i < a[k].size(); i++) {
      const double diff = std::fabs(static_cast<double>(a[k][i]) - b[k][i]);
      if (!(diff <= atol + rtol * std::fabs(a[k][i])) && !(std::isinf(a[k][i]) && a[k][i] == b[k][i])) {
        if (!(diff <= worst)) {
          worst = diff;
          at = i;
        }
        bad = true;
      }
    }
    if (bad) {
      std::ostringstream s;
      s << name << " output " << k << ": max |diff| " << worst << " at " << at;
      if (at < a[k].size() && at < b[k].size()) s << " (ref " << a[k][at] << ", test " << b[k][at] << ")";
      rep.failures.push_back(s.str());
    }
  }
}

}  // namespace

OpsReport compare_backends(const qt::Backend& ref, const qt::Backend& test, double rtol, double atol) {
  OpsReport rep;
  auto run = [&](const std::string& name, const Case& c) { compare(rep, name, c, ref, test, rtol, atol); };

  // embedding (every table dtype) and its scatter-add backward
  for (qt::DType dt : {qt::DType::F32, qt::DType::BF16, qt::DType::F16}) {
    const int V = 37, C = 24, N = 19;
    HostWeight w = make_weight(dt, V, C, 1);
    std::vector<int32_t> ids(N);
    for (int i = 0; i < N; i++) ids[static_cast<size_t>(i)] = static_cast<int32_t>(qt::rng_u64(2, static_cast<uint64_t>(i)) % V);
    run(std::string("embedding ") + qt::dtype_name(dt), [&](Dev& d) {
      float* out = d.put(std::vector<float>(static_cast<size_t>(N) * C));
      const int32_t* di = d.put(ids);
      d.be().embedding_forward(out, di, upload_weight(d, w), N, C);
      float* dw = d.put(rnd(static_cast<size_t>(V) * C, 3));
      d.be().embedding_backward(dw, d.put(rnd(static_cast<size_t>(N) * C, 4)), di, N, C);
      return Outputs{d.get(out, static_cast<size_t>(N) * C), d.get(dw, static_cast<size_t>(V) * C)};
    });
  }
  // NEFTune (same counter-based noise on every backend)
  run("neftune", [&](Dev& d) {
    const int B = 3, T = 9, C = 40;
    float* x = d.put(rnd(static_cast<size_t>(B) * T * C, 5));
    d.be().neftune_forward(x, d.put(std::vector<int32_t>{9, 4, 1}), 5.0f, 77, B, T, C);
    return Outputs{d.get(x, static_cast<size_t>(B) * T * C)};
  });
  // RMSNorm
  for (int C : {33, 256}) {
    run("rmsnorm C=" + std::to_string(C), [&](Dev& d) {
      const int N = 7;
      const size_t NC = static_cast<size_t>(N) * C;
      float* out = d.put(std::vector<float>(NC));
      float* rstd = d.put(std::vector<float>(static_cast<size_t>(N)));
      const float* x = d.put(rnd(NC, 6, -3, 3));
      const float* w = d.put(rnd(static_cast<size_t>(C), 7, 0.5f, 1.5f));
      d.be().rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
      float* dx = d.put(rnd(NC, 8));
      float* dw = d.put(rnd(static_cast<size_t>(C), 9));
      d.be().rmsnorm_backward(dx, dw, d.put(rnd(NC, 10)), x, w, rstd, N, C);
      return Outputs{d.get(out, NC), d.get(rstd, static_cast<size_t>(N)), d.get(dx, NC), d.get(dw, static_cast<size_t>(C))};
    });
  }
  // the residual add fused with the RMSNorm after it: out of place and in place on a (model.cpp's x_mid = x_mid + x);
  // a decode row (one rows-kernel launch on a GPU), a few odd rows, and more rows than the GPU's rows kernel takes
  struct AddNormShape {
    int N, C;
    bool in_place;
  };
  for (AddNormShape s : {AddNormShape{1, 256, true}, AddNormShape{7, 33, false}, AddNormShape{5, 96, true}, AddNormShape{300, 64, true}}) {
    run("add_rmsnorm N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + (s.in_place ? " in place" : ""), [&](Dev& d) {
      const size_t NC = static_cast<size_t>(s.N) * s.C;
      float* a = d.put(rnd(NC, 50, -2, 2));
      const float* b = d.put(rnd(NC, 51, -2, 2));
      float* x_out = s.in_place ? a : d.put(std::vector<float>(NC));
      float* out = d.put(std::vector<float>(NC));
      float* rstd = d.put(std::vector<float>(static_cast<size_t>(s.N)));
      d.be().add_rmsnorm_forward(x_out, out, rstd, a, b, d.put(rnd(static_cast<size_t>(s.C), 52, 0.5f, 1.5f)), s.N, s.C, 1e-5f);
      return Outputs{d.get(x_out, NC), d.get(out, NC), d.get(rstd, static_cast<size_t>(s.N))};
    });
  }
  // RoPE (llama3-scaled frequencies), forward and backward, with a position offset
  {
    qt::ModelConfig mc;
    mc.head_dim = 64;
    mc.rope_theta = 500000.0f;
    mc.rope_scaling.type = "llama3";
    mc.rope_scaling.factor = 8;
    mc.rope_scaling.original_max_position = 64;
    const std::vector<float> inv = qt::rope_inv_freq(mc);
    run("rope", [&](Dev& d) {
      const int B = 2, T = 11, H = 3, HS = 64;
      const size_t n = static_cast<size_t>(B) * T * H * HS;
      const float* f = d.put(inv);
      float* out = d.put(std::vector<float>(n));
      d.be().rope_forward(out, d.put(rnd(n, 11)), f, B, T, H, HS, 1000);
      float* g = d.put(rnd(n, 12));
      d.be().rope_backward(g, g, f, B, T, H, HS, 1000);  // in place
      return Outputs{d.get(out, n), d.get(g, n)};
    });
    // q and k in one op, in place (GQA: fewer key heads), at a decode step and over a prompt
    for (int T : {1, 11}) {
      run("rope_forward_qk T=" + std::to_string(T), [&](Dev& d) {
        const int B = 2, NH = 4, NKV = 2, HS = 64;
        const size_t nq = static_cast<size_t>(B) * T * NH * HS, nk = static_cast<size_t>(B) * T * NKV * HS;
        float* q = d.put(rnd(nq, 53));
        float* k = d.put(rnd(nk, 54));
        d.be().rope_forward_qk(q, k, d.put(inv), B, T, NH, NKV, HS, 37 + T);
        return Outputs{d.get(q, nq), d.get(k, nk)};
      });
    }
  }
  // attention: GQA + padding, and cached queries (Tq < Tk)
  struct AttnShape {
    int B, Tq, Tk, NH, NKV, HS;
    bool lengths;
  };
  for (AttnShape s : {AttnShape{2, 13, 13, 8, 2, 16, true}, AttnShape{1, 3, 17, 4, 4, 32, false}, AttnShape{3, 5, 5, 6, 1, 8, true}}) {
    run("attention B=" + std::to_string(s.B) + " Tq=" + std::to_string(s.Tq) + " Tk=" + std::to_string(s.Tk), [&](Dev& d) {
      const size_t nq = static_cast<size_t>(s.B) * s.Tq * s.NH * s.HS, nk = static_cast<size_t>(s.B) * s.Tk * s.NKV * s.HS;
      std::vector<int32_t> len;
      for (int b = 0; b < s.B; b++) len.push_back(std::max(1, s.Tk - 3 * b));
      const int32_t* dl = s.lengths ? d.put(len) : nullptr;
      const float* q = d.put(rnd(nq, 13, -2, 2));
      const float* k = d.put(rnd(nk, 14, -2, 2));
      const float* v = d.put(rnd(nk, 15));
      float* out = d.put(std::vector<float>(nq));
      float* lse = d.put(std::vector<float>(static_cast<size_t>(s.B) * s.NH * s.Tq));
      d.be().attention_forward(out, lse, q, k, v, dl, s.B, s.Tq, s.Tk, s.NH, s.NKV, s.HS, qt::DType::F32);
      float* dq = d.put(rnd(nq, 16));
      float* dk = d.put(rnd(nk, 17));
      float* dv = d.put(rnd(nk, 18));
      d.be().attention_backward(dq, dk, dv, d.put(rnd(nq, 19)), q, k, v, out, lse, dl, s.B, s.Tq, s.Tk, s.NH, s.NKV, s.HS, qt::DType::F32);
      return Outputs{d.get(out, nq), d.get(lse, static_cast<size_t>(s.B) * s.NH * s.Tq), d.get(dq, nq), d.get(dk, nk), d.get(dv, nk)};
    });
  }
  // SwiGLU
  run("swiglu", [&](Dev& d) {
    const size_t n = 1003;
    const float* g = d.put(rnd(n, 20, -6, 6));
    const float* u = d.put(rnd(n, 21, -2, 2));
    float* out = d.put(std::vector<float>(n));
    d.be().swiglu_forward(out, g, u, n);
    float* dg = d.put(rnd(n, 22));
    float* du = d.put(rnd(n, 23));
    d.be().swiglu_backward(dg, du, d.put(rnd(n, 24)), g, u, n);
    return Outputs{d.get(out, n), d.get(dg, n), d.get(du, n)};
  });
  // matmul and dequantize for every weight dtype (NF4 with and without double quantization)
  struct MmCase {
    qt::DType dt;
    bool dq;
    const char* name;
  };
  for (MmCase mcase : {MmCase{qt::DType::F32, false, "F32"}, MmCase{qt::DType::BF16, false, "BF16"}, MmCase{qt::DType::F16, false, "F16"},
                       MmCase{qt::DType::NF4, true, "NF4+DQ"}, MmCase{qt::DType::NF4, false, "NF4"}}) {
    const int N = 9, C = 192, OC = 70;
    HostWeight w = make_weight(mcase.dt, OC, C, 25, mcase.dq);
    run(std::string("matmul ") + mcase.name, [&](Dev& d) {
      const qt::Weight dw_ = upload_weight(d, w);
      const float* x = d.put(rnd(static_cast<size_t>(N) * C, 26));
      const float* bias = d.put(rnd(static_cast<size_t>(OC), 27));
      float* out = d.put(std::vector<float>(static_cast<size_t>(N) * OC));
      d.be().matmul_forward(out, x, dw_, bias, N, C, OC);
      float* dx = d.put(rnd(static_cast<size_t>(N) * C, 28));
      float* dwt = d.put(rnd(static_cast<size_t>(OC) * C, 29));
      float* db = d.put(rnd(static_cast<size_t>(OC), 30));
      d.be().matmul_backward(dx, mcase.dt == qt::DType::F32 ? dwt : nullptr, db, d.put(rnd(static_cast<size_t>(N) * OC, 31)), x, dw_, N, C, OC);
      float* deq = d.put(std::vector<float>(static_cast<size_t>(OC) * C));
      d.be().dequantize(deq, dw_);
      return Outputs{d.get(out, static_cast<size_t>(N) * OC), d.get(dx, static_cast<size_t>(N) * C),
                     d.get(dwt, static_cast<size_t>(OC) * C), d.get(db, static_cast<size_t>(OC)), d.get(deq, static_cast<size_t>(OC) * C)};
    });
  }
  // several weights sharing one input (q/k/v, gate/up): N = 1 is the decode GEMV's one launch on a GPU
  for (int N : {1, 3}) {
    const int C = 192;
    HostWeight w0 = make_weight(qt::DType::NF4, 70, C, 40, true), w1 = make_weight(qt::DType::NF4, 18, C, 41, true),
               w2 = make_weight(qt::DType::NF4, 18, C, 42, false);
    run("matmul_forward_many N=" + std::to_string(N), [&](Dev& d) {
      const qt::Weight d0 = upload_weight(d, w0), d1 = upload_weight(d, w1), d2 = upload_weight(d, w2);
      const float* x = d.put(rnd(static_cast<size_t>(N) * C, 43));
      const float* bias = d.put(rnd(18, 44));
      float* outs[3] = {d.put(std::vector<float>(static_cast<size_t>(N) * 70)), d.put(std::vector<float>(static_cast<size_t>(N) * 18)),
                        d.put(std::vector<float>(static_cast<size_t>(N) * 18))};
      const qt::Weight* ws[3] = {&d0, &d1, &d2};
      const float* bs[3] = {nullptr, bias, nullptr};
      d.be().matmul_forward_many(outs, x, ws, bs, 3, N, C);
      float* one = d.put(std::vector<float>(static_cast<size_t>(N) * 18));  // the same product alone
      d.be().matmul_forward(one, x, d1, bias, N, C, 18);
      return Outputs{d.get(outs[0], static_cast<size_t>(N) * 70), d.get(outs[1], static_cast<size_t>(N) * 18),
                     d.get(outs[2], static_cast<size_t>(N) * 18), d.get(one, static_cast<size_t>(N) * 18)};
    });
  }
  // LoRA with and without dropout
  for (float p : {0.0f, 0.1f}) {
    run("lora dropout=" + std::to_string(p), [&](Dev& d) {
      const int N = 10, C = 48, OC = 36, R = 8;
      const float* x = d.put(rnd(static_cast<size_t>(N) * C, 32));
      const float* A = d.put(rnd(static_cast<size_t>(R) * C, 33));
      const float* B = d.put(rnd(static_cast<size_t>(OC) * R, 34));
      float* out = d.put(rnd(static_cast<size_t>(N) * OC, 35));  // lora_forward adds into out
      float* u = d.put(std::vector<float>(static_cast<size_t>(N) * R));
      float* scratch = d.put(std::vector<float>(static_cast<size_t>(N) * (C + R)));
      d.be().lora_forward(out, u, scratch, x, A, B, 0.25f, p, 99, N, C, OC, R, qt::DType::F32);
      float* dx = d.put(rnd(static_cast<size_t>(N) * C, 36));
      float* dA = d.put(rnd(static_cast<size_t>(R) * C, 37));
      float* dB = d.put(rnd(static_cast<size_t>(OC) * R, 38));
      d.be().lora_backward(dx, dA, dB, scratch, d.put(rnd(static_cast<size_t>(N) * OC, 39)), x, u, A, B, 0.25f, p, 99, N, C, OC, R,
                           qt::DType::F32);
      return Outputs{d.get(out, static_cast<size_t>(N) * OC), d.get(u, static_cast<size_t>(N) * R), d.get(dx, static_cast<size_t>(N) * C),
                     d.get(dA, static_cast<size_t>(R) * C), d.get(dB, static_cast<size_t>(OC) * R)};
    });
  }
  // cross-entropy with ignored rows, out of place and in place
  run("cross_entropy", [&](Dev& d) {
    const int N = 8, V = 517;
    std::vector<int32_t> t = {3, -100, 516, 0, -1, 77, 200, 5};
    const float* logits = d.put(rnd(static_cast<size_t>(N) * V, 40, -8, 8));
    const int32_t* dt = d.put(t);
    float* losses = d.put(std::vector<float>(static_cast<size_t>(N)));
    d.be().cross_entropy_forward(losses, logits, dt, N, V);
    float* dl = d.put(rnd(static_cast<size_t>(N) * V, 41));
    d.be().cross_entropy_backward(dl, logits, dt, 1.0f / 6, N, V);
    float* inplace = d.put(rnd(static_cast<size_t>(N) * V, 40, -8, 8));
    d.be().cross_entropy_backward(inplace, inplace, dt, 1.0f / 6, N, V);
    return Outputs{d.get(losses, static_cast<size_t>(N)), d.get(dl, static_cast<size_t>(N) * V), d.get(inplace, static_cast<size_t>(N) * V)};
  });
  // the fused forward + backward, in place (as training calls it) with V % 4 == 0 and out of place with an odd V
  for (int V : {516, 517}) {
    run("cross_entropy_fused V=" + std::to_string(V), [&](Dev& d) {
      const int N = 8;
      std::vector<int32_t> t = {3, -100, V - 1, 0, -1, 77, 200, 5};
      float* logits = d.put(rnd(static_cast<size_t>(N) * V, 42, -8, 8));
      const int32_t* dt = d.put(t);
      float* losses = d.put(std::vector<float>(static_cast<size_t>(N), 7.0f));
      float* dl = V % 2 ? d.put(rnd(static_cast<size_t>(N) * V, 43)) : logits;
      d.be().cross_entropy_fused(losses, dl, logits, dt, 1.0f / 6, N, V);
      return Outputs{d.get(losses, static_cast<size_t>(N)), d.get(dl, static_cast<size_t>(N) * V)};
    });
  }
  // greedy decoding's argmax: ties (the first), a NaN row (-1), an all -inf row (0); indices as floats
  run("argmax_rows", [&](Dev& d) {
    const int N = 5, V = 70000;
    std::vector<float> x = rnd(static_cast<size_t>(N) * V, 44, -8, 8);
    x[static_cast<size_t>(1) * V + 123] = 9.0f;
    x[static_cast<size_t>(1) * V + 60001] = 9.0f;
    x[static_cast<size_t>(2) * V + 5] = std::nanf("");
    for (int j = 0; j < V; j++) x[static_cast<size_t>(3) * V + j] = -INFINITY;
    const float* dx = d.put(x);
    int32_t* out = d.put(std::vector<int32_t>(static_cast<size_t>(N), 7));
    d.be().argmax_rows(out, dx, N, V);
    std::vector<int32_t> got(static_cast<size_t>(N));
    d.be().download(got.data(), out, got.size() * sizeof(int32_t));
    std::vector<float> as_f(got.begin(), got.end());
    return Outputs{as_f};
  });
  // elementwise, reduction and AdamW
  run("add/scale/sum_squares", [&](Dev& d) {
    const size_t n = 4097;
    float* a = d.put(rnd(n, 42));
    d.be().add(a, a, d.put(rnd(n, 43)), n);
    d.be().scale(a, 0.37f, n);
    const double ss = d.be().sum_squares(a, n);
    return Outputs{d.get(a, n), {static_cast<float>(ss)}};
  });
  // bf16 storage of activations: round to nearest even and back (compared after the round trip, as floats)
  run("to_bf16/from_bf16", [&](Dev& d) {
    const size_t n = 2053;
    auto x = rnd(n, 48, -300, 300);
    x[0] = 1.00390625f;  // exactly between two bf16 values: ties to even
    x[1] = 1.01171875f;
    const float* dx = d.put(x);
    uint16_t* h = d.put(std::vector<uint16_t>(n));
    d.be().to_bf16(h, dx, n);
    float* back = d.put(std::vector<float>(n));
    d.be().from_bf16(back, h, n);
    return Outputs{d.get(back, n)};
  });
  run("adamw", [&](Dev& d) {
    const size_t n = 3001;
    float* p = d.put(rnd(n, 44));
    float* m = d.put(rnd(n, 45, -0.01f, 0.01f));
    float* v = d.put(rnd(n, 46, 0.0f, 1e-4f));
    d.be().adamw_update(p, d.put(rnd(n, 47)), m, v, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 7);
    return Outputs{d.get(p, n), d.get(m, n), d.get(v, n)};
  });
  return rep;
}

}  // namespace qtest
