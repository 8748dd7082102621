// The Llama-family decoder (Llama 2/3, Mistral, Qwen2) forward and backward as a straight sequence of
// backend ops; backward mirrors forward line by line in reverse (llm.c gpt2_forward / gpt2_backward).
//
//   x0 = embed(ids) [+ NEFTune noise]
//   per layer:  xn1 = rmsnorm(x);  q,k,v = linear(xn1) (+ LoRA, + Qwen2 biases);  q,k = rope(q,k)
//               att = attention(q, k, v);  x_mid = x + linear_o(att)
//               xn2 = rmsnorm(x_mid);  h = silu(linear_gate(xn2)) * linear_up(xn2);  x' = x_mid + linear_down(h)
//   xf = rmsnorm(x_L);  logits = lm_head(xf);  loss = cross_entropy(logits, targets)
//
// Only LoRA matrices get gradients: the base, norms and embeddings are frozen, so backward never forms weight
// gradients for them. With gradient checkpointing only each layer's input is kept; backward recomputes the
// layer (same dropout masks: they are counter-based) before differentiating it.
// Fused ops, each bit-identical to the ops it replaces (they only save GPU launches): every residual add runs together
// with the RMSNorm after it (add_rmsnorm_forward: x_mid with xn2, a layer's output with the next layer's xn1 or xf),
// and q's and k's RoPE are one op (rope_forward_qk).
//
// Dims legend: B rows, T padded length, N = B*T, C hidden, NH/NKV heads, HS head size, FF intermediate,
// V vocab, R LoRA rank, L layers.
#include <algorithm>
#include <vector>

#include "model.h"
#include "rng.h"

namespace qt {

void check_cancel(CancelToken* cancel) {
  if (cancel && cancel->load()) QT_FAIL(ErrorCode::Cancelled, "cancelled");
}

namespace {

// Random stream of LoRA dropout for (layer, target) within a micro-batch.
inline uint64_t dropout_seed(const Pass& p, int l, int t) { return rng_derive(p.seed, 1 + static_cast<uint64_t>(l), static_cast<uint64_t>(t)); }
inline uint64_t neftune_seed(const Pass& p) { return rng_derive(p.seed, 0, 0xfeedu); }

// y[N, out] += scale * B A dropout(x) when the adapter has target t
void lora_add(const Model& m, const Adapter* ad, Activations& a, const Pass& p, int l, int t, float* out, const float* inp,
              float* u) {
  if (!ad || !ad->has(t)) return;
  const int N = p.B * p.T, in = target_in_features(m.config, t), outf = target_out_features(m.config, t);
  m.be->lora_forward(out, u, a.lora_scratch, inp, ad->A(l, t), ad->B(l, t), ad->scaling,
                     p.training ? ad->config.dropout : 0.0f, dropout_seed(p, l, t), N, in, outf, ad->config.r, m.compute);
}

// y[N, out] = x[N, in] @ W^T (+ bias) (+ scale * B A dropout(x))
void linear_forward(const Model& m, const Adapter* ad, Activations& a, const Pass& p, int l, int t, float* out,
                    const float* inp, float* u) {
  const int N = p.B * p.T, in = target_in_features(m.config, t), outf = target_out_features(m.config, t);
  const LayerWeights& lw = m.layers[static_cast<size_t>(l)];
  m.be->matmul_forward(out, inp, lw.lin[t], lw.bias[t], N, in, outf);
  lora_add(m, ad, a, p, l, t, out, inp, u);
}

// linear_forward for K targets that share their input (q/k/v; gate/up): the K base products in one backend call (one
// GEMV launch when decoding on a GPU), then each target's LoRA path. Outputs are independent: the same results.
template <int K>
void linear_forward_many(const Model& m, const Adapter* ad, Activations& a, const Pass& p, int l, const int (&t)[K],
                         float* const (&out)[K], const float* inp, LayerActs& la) {
  const LayerWeights& lw = m.layers[static_cast<size_t>(l)];
  const Weight* ws[K];
  const float* bs[K];
  for (int k = 0; k < K; k++) {
    ws[k] = &lw.lin[t[k]];
    bs[k] = lw.bias[t[k]];
  }
  m.be->matmul_forward_many(out, inp, ws, bs, K, p.B * p.T, target_in_features(m.config, t[0]));
  for (int k = 0; k < K; k++) lora_add(m, ad, a, p, l, t[k], out[k], inp, la.u[t[k]]);
}

// dinp[N, in] += dout @ W (+ LoRA path); dA, dB += LoRA gradients. dinp may be null (not needed). overwrite: dinp =
// instead of += (the base product overwrites it first, then the LoRA path adds: no zeroing before).
void linear_backward(const Model& m, const Adapter* ad, Activations& a, const Pass& p, int l, int t, float* dinp,
                     float* dparams, const float* dout, const float* inp, const float* u, bool overwrite = false) {
  const Backend& be = *m.be;
  const int N = p.B * p.T, in = target_in_features(m.config, t), outf = target_out_features(m.config, t);
  const LayerWeights& lw = m.layers[static_cast<size_t>(l)];
  if (overwrite && dinp) {
    be.matmul_backward_t(dinp, DType::F32, false, dout, DType::F32, lw.lin[t], N, in, outf);
  }
  if (ad && ad->has(t)) {
    const LoraSlot& s = ad->layout.slots[static_cast<size_t>(l)][static_cast<size_t>(t)];
    be.lora_backward(dinp, dparams + s.a, dparams + s.b, a.lora_scratch, dout, inp, u, ad->A(l, t), ad->B(l, t),
                     ad->scaling, p.training ? ad->config.dropout : 0.0f, dropout_seed(p, l, t), N, in, outf, ad->config.r,
                     m.compute);
  }
  if (dinp && !overwrite) be.matmul_backward(dinp, nullptr, nullptr, dout, nullptr, lw.lin[t], N, in, outf);
}

const int32_t* lengths_of(const Activations& a, const Pass& p) { return p.use_lengths ? a.lengths : nullptr; }

// Whether the MLP keeps its intermediates in bf16 (Activations::mlp_bf16, which memory.cpp sets only for a model whose
// gate/up/down compute in bf16 without biases): gate, up and h (the products' outputs stored as bf16, SwiGLU read and
// written in bf16, down_proj multiplying h as it is) and in backward dh, dgate, dup (the same, each product
// overwriting its output, so nothing is zeroed). Only the products and SwiGLU read these values when gate/up/down
// have no LoRA; the GEMMs round them to bf16 anyway. The fp32 buffers hold them in their first half.
bool mlp_in_bf16(const Adapter* ad, const Activations& a) {
  if (!a.mlp_bf16) return false;
  const bool mlp_lora = ad && (ad->has(TGATE) || ad->has(TUP) || ad->has(TDOWN));
  QT_CHECK(!mlp_lora || !a.mlp_half, ErrorCode::Internal, "MLP buffers sized for bf16 intermediates, but a LoRA there needs fp32 ones");
  return !mlp_lora;
}

uint16_t* bf16_in(float* buf) { return reinterpret_cast<uint16_t*>(buf); }

// Where the RMSNorm after a layer's output goes: the next layer's attention norm (xn1, rstd1 of its LayerActs) or,
// after the last layer, the final norm (a.xf, a.rstdf).
struct NextNorm {
  float* out;
  float* rstd;
  const float* weight;
};

// Residual adds fused with the RMSNorm after them (Backend::add_rmsnorm_forward; same bits as add then rmsnorm, one
// GPU launch instead of two, which is what a decode step's tiny kernels cost): x_mid = x + o(att) with xn2, and the
// layer's last add x_out = x_mid + down(h) with the norm after the layer (`next`). So in the forward pass a layer
// starts with its xn1/rstd1 already computed: by the previous layer, or by model_forward for layer 0.
// next == nullptr: the backward pass's recomputation of a checkpointed layer. It computes its own xn1 from x, and as
// backward needs the layer's internals, not its output, it skips down_proj's product and the last residual add (only
// its LoRA intermediate u is kept: lora_forward's delta lands in x_out, which nothing reads), and without a LoRA on
// down_proj the SwiGLU too (h is down_proj's input, and backward reads it only for that LoRA).
void layer_forward(const Model& m, const Adapter* ad, Activations& a, LayerActs& la, const Pass& p, int l,
                   const float* x, float* x_out, const NextNorm* next) {
  const bool recompute = next == nullptr;
  const Backend& be = *m.be;
  const ModelConfig& c = m.config;
  const LayerWeights& lw = m.layers[static_cast<size_t>(l)];
  const int N = p.B * p.T, C = c.hidden_size, FF = c.intermediate_size;
  const int NH = c.num_heads, NKV = c.num_kv_heads, HS = c.head_dim;

  // attention block
  // generation (B = 1, p.cache): this step's keys and values are written straight into the cache at pos0, and the
  // attention runs over everything cached
  const size_t KD = static_cast<size_t>(NKV * HS);
  float* kdst = p.cache ? p.cache->k[static_cast<size_t>(l)] + static_cast<size_t>(p.pos0) * KD : la.k;
  float* vdst = p.cache ? p.cache->v[static_cast<size_t>(l)] + static_cast<size_t>(p.pos0) * KD : la.v;
  if (recompute) be.rmsnorm_forward(la.xn1, la.rstd1, x, lw.attn_norm, N, C, c.rms_norm_eps);
  linear_forward_many<3>(m, ad, a, p, l, {TQ, TK, TV}, {la.q, kdst, vdst}, la.xn1, la);
  be.rope_forward_qk(la.q, kdst, m.inv_freq, p.B, p.T, NH, NKV, HS, p.pos0);  // both rotations in one op
  const float* keys = la.k;
  const float* values = la.v;
  int Tk = p.T;
  if (p.cache) {
    keys = p.cache->k[static_cast<size_t>(l)];
    values = p.cache->v[static_cast<size_t>(l)];
    Tk = p.pos0 + p.T;
  }
  be.attention_forward(la.att, la.lse, la.q, keys, values, lengths_of(a, p), p.B, p.T, Tk, NH, NKV, HS, m.compute);
  // x_mid = x + o(att): the product lands in x_mid, then the residual is added in place (a + b == b + a exactly),
  // fused with the MLP block's norm xn2 = rmsnorm(x_mid)
  linear_forward(m, ad, a, p, l, TO, la.x_mid, la.att, la.u[TO]);
  be.add_rmsnorm_forward(la.x_mid, la.xn2, la.rstd2, la.x_mid, x, lw.mlp_norm, N, C, c.rms_norm_eps);

  // MLP block
  if (mlp_in_bf16(ad, a)) {
    uint16_t *gate = bf16_in(la.gate), *up = bf16_in(la.up), *h = bf16_in(la.h);
    be.matmul_forward_t(gate, DType::BF16, la.xn2, DType::F32, lw.lin[TGATE], N, C, FF);
    be.matmul_forward_t(up, DType::BF16, la.xn2, DType::F32, lw.lin[TUP], N, C, FF);
    if (recompute) return;  // backward reads gate and up only
    be.swiglu_forward_bf16(h, gate, up, static_cast<size_t>(N) * FF);
    be.matmul_forward_t(x_out, DType::F32, h, DType::BF16, lw.lin[TDOWN], N, FF, C);
    be.add_rmsnorm_forward(x_out, next->out, next->rstd, x_out, la.x_mid, next->weight, N, C, c.rms_norm_eps);
    return;
  }
  linear_forward_many<2>(m, ad, a, p, l, {TGATE, TUP}, {la.gate, la.up}, la.xn2, la);
  if (recompute) {  // backward reads h only for down_proj's LoRA (its dA): without one, h is not recomputed either
    if (ad && ad->has(TDOWN)) {
      be.swiglu_forward(la.h, la.gate, la.up, static_cast<size_t>(N) * FF);
      lora_add(m, ad, a, p, l, TDOWN, x_out, la.h, la.u[TDOWN]);
    }
    return;
  }
  be.swiglu_forward(la.h, la.gate, la.up, static_cast<size_t>(N) * FF);
  linear_forward(m, ad, a, p, l, TDOWN, x_out, la.h, la.u[TDOWN]);
  // x_out = x_mid + down(h), fused with the norm after this layer (next layer's xn1, or the final norm)
  be.add_rmsnorm_forward(x_out, next->out, next->rstd, x_out, la.x_mid, next->weight, N, C, c.rms_norm_eps);
}

// On entry a.dx = d(layer output); on exit a.dx = d(layer input) (when need_dx). Buffers are reused once their
// values are dead (memory.cpp): dgate goes into la.h, datt/dq into dh's buffer, dk/dv into dup's.
void layer_backward(const Model& m, const Adapter* ad, Activations& a, const LayerActs& la, const Pass& p, int l,
                    const float* x, float* dparams, bool need_dx) {
  const Backend& be = *m.be;
  const ModelConfig& c = m.config;
  const LayerWeights& lw = m.layers[static_cast<size_t>(l)];
  const int N = p.B * p.T, C = c.hidden_size, FF = c.intermediate_size;
  const int NH = c.num_heads, NKV = c.num_kv_heads, HS = c.head_dim;
  const size_t NF = static_cast<size_t>(N) * FF;
  const size_t NQ = static_cast<size_t>(N) * NH * HS, NK = static_cast<size_t>(N) * NKV * HS;

  // MLP block (reverse): x_out = x_mid + down(h), h = swiglu(gate(xn2), up(xn2)), xn2 = rmsnorm(x_mid)
  if (mlp_in_bf16(ad, a)) {  // the same in bf16, each output overwritten (no zeroing)
    uint16_t *dh = bf16_in(a.dh), *dgate = bf16_in(la.h), *dup = bf16_in(a.dup);  // h is dead (and not even recomputed)
    be.matmul_backward_t(dh, DType::BF16, false, a.dx, DType::F32, lw.lin[TDOWN], N, FF, C);
    be.swiglu_backward_bf16(dgate, dup, dh, bf16_in(la.gate), bf16_in(la.up), NF);
    be.matmul_backward_t(a.dxn, DType::F32, false, dup, DType::BF16, lw.lin[TUP], N, C, FF);
    be.matmul_backward_t(a.dxn, DType::F32, true, dgate, DType::BF16, lw.lin[TGATE], N, C, FF);
  } else {
    be.zero(a.dh, NF * sizeof(float));
    linear_backward(m, ad, a, p, l, TDOWN, a.dh, dparams, a.dx, la.h, la.u[TDOWN]);
    float* dgate = la.h;  // h is dead from here on
    be.zero(dgate, NF * sizeof(float));
    be.zero(a.dup, NF * sizeof(float));
    be.swiglu_backward(dgate, a.dup, a.dh, la.gate, la.up, NF);
    linear_backward(m, ad, a, p, l, TUP, a.dxn, dparams, a.dup, la.xn2, la.u[TUP], /*overwrite=*/true);
    linear_backward(m, ad, a, p, l, TGATE, a.dxn, dparams, dgate, la.xn2, la.u[TGATE]);
  }
  be.rmsnorm_backward(a.dx, nullptr, a.dxn, la.x_mid, lw.mlp_norm, la.rstd2, N, C);  // a.dx = d(x_mid)

  // attention block (reverse): x_mid = x + o(att), att = attention(rope(q), rope(k), v), q/k/v = linear(xn1)
  // (dh and dup are dead: datt, dq, dk, dv live in their buffers)
  linear_backward(m, ad, a, p, l, TO, a.datt, dparams, a.dx, la.att, la.u[TO], /*overwrite=*/true);
  be.zero(a.dq, NQ * sizeof(float));
  be.zero(a.dk, NK * sizeof(float));
  be.zero(a.dv, NK * sizeof(float));
  be.attention_backward(a.dq, a.dk, a.dv, a.datt, la.q, la.k, la.v, la.att, la.lse, lengths_of(a, p), p.B, p.T, p.T,
                        NH, NKV, HS, m.compute);
  be.rope_backward(a.dk, a.dk, m.inv_freq, p.B, p.T, NKV, HS, p.pos0);
  be.rope_backward(a.dq, a.dq, m.inv_freq, p.B, p.T, NH, HS, p.pos0);
  float* dxn = need_dx ? a.dxn : nullptr;
  linear_backward(m, ad, a, p, l, TV, dxn, dparams, a.dv, la.xn1, la.u[TV], /*overwrite=*/true);
  linear_backward(m, ad, a, p, l, TK, dxn, dparams, a.dk, la.xn1, la.u[TK]);
  linear_backward(m, ad, a, p, l, TQ, dxn, dparams, a.dq, la.xn1, la.u[TQ]);
  if (need_dx) be.rmsnorm_backward(a.dx, nullptr, a.dxn, x, lw.attn_norm, la.rstd1, N, C);  // a.dx = d(x)
}

// While a checkpointed layer is recomputed and differentiated, the backend keeps the weights it converts (the
// recomputation's matmul_forward) for the backward's matmul_backward (Backend::keep_weights); this stops the keeping
// however the backward pass ends (a cancel or an error included), before the memory can be reused.
class KeptWeights {
 public:
  KeptWeights(const Backend& be, const Activations& a) : be_(be), a_(a) {}
  ~KeptWeights() {
    try {
      if (on_) be_.keep_weights(nullptr, 0);
    } catch (...) {  // a device already in error: nothing is enqueued any more
    }
  }
  KeptWeights(const KeptWeights&) = delete;
  KeptWeights& operator=(const KeptWeights&) = delete;
  /** Forgets the previous layer's copies and keeps this layer's (no-op without the memory). */
  void next_layer() {
    if (!a_.wkeep) return;
    be_.keep_weights(a_.wkeep, a_.wkeep_bytes);
    on_ = true;
  }

 private:
  const Backend& be_;
  const Activations& a_;
  bool on_ = false;
};

// The layer's saved activations in the forward pass (Train: its own set; otherwise the one shared set).
LayerActs& acts_of(Activations& a, int l) { return a.mode == ActMode::Train ? a.layer[static_cast<size_t>(l)] : a.layer[0]; }
// Residual buffers: layer l reads x_in(l) and writes x_in(l + 1) (inference, and training with bf16 checkpoints,
// use two fp32 buffers in turn).
float* x_in(Activations& a, int l) {
  return a.x.size() == 2 ? a.x[static_cast<size_t>(l % 2)] : a.x[static_cast<size_t>(l)];
}

}  // namespace

void model_forward(const Model& m, const Adapter* ad, Activations& a, const Pass& p, CancelToken* cancel) {
  const Backend& be = *m.be;
  const ModelConfig& c = m.config;
  const int N = p.B * p.T, C = c.hidden_size, L = c.num_layers;
  QT_CHECK(N > 0 && N <= a.capacity, ErrorCode::Internal, "batch larger than the activation capacity");

  be.embedding_forward(x_in(a, 0), a.ids, m.wte, N, C);
  if (p.training && p.neftune_alpha > 0)
    be.neftune_forward(x_in(a, 0), a.lengths, p.neftune_alpha, neftune_seed(p), p.B, p.T, C);
  // Layer 0's attention norm; every later norm is computed by the layer before it, fused with its last residual add
  // (layer_forward), the final norm by the last layer. Outside Train mode the layers share one LayerActs set: layer l
  // writes the next layer's xn1/rstd1 into it once it is done with its own (and a.xf is that xn1 too: memory.cpp).
  LayerActs& la0 = acts_of(a, 0);
  be.rmsnorm_forward(la0.xn1, la0.rstd1, x_in(a, 0), m.layers[0].attn_norm, N, C, c.rms_norm_eps);
  for (int l = 0; l < L; l++) {
    check_cancel(cancel);
    if (a.ckpt_bf16) be.to_bf16(a.xs[static_cast<size_t>(l)], x_in(a, l), static_cast<size_t>(N) * C);
    NextNorm next{a.xf, a.rstdf, m.final_norm};
    if (l + 1 < L) {
      LayerActs& nl = acts_of(a, l + 1);
      next = NextNorm{nl.xn1, nl.rstd1, m.layers[static_cast<size_t>(l + 1)].attn_norm};
    }
    layer_forward(m, ad, a, acts_of(a, l), p, l, x_in(a, l), x_in(a, l + 1), &next);
  }
}

double model_loss(const Model& m, const Adapter* ad, Activations& a, const Pass& p, float* dparams, float dloss,
                  CancelToken* cancel) {
  const Backend& be = *m.be;
  const ModelConfig& c = m.config;
  const int N = p.B * p.T, C = c.hidden_size, V = c.vocab_size, L = c.num_layers;
  const bool backward = dparams != nullptr;
  QT_CHECK(!backward || a.mode != ActMode::Inference, ErrorCode::Internal, "backward needs training activations");

  // lm_head + cross-entropy, in chunks of rows; in training the chunk's dlogits go straight back to dxf (a.dxn).
  for (int r0 = 0; r0 < N; r0 += a.logit_rows) {
    const int rows = std::min(a.logit_rows, N - r0);
    const float* xf = a.xf + static_cast<size_t>(r0) * C;
    be.matmul_forward(a.logits, xf, m.lm_head, nullptr, rows, C, V);
    if (!backward) {
      be.cross_entropy_forward(a.losses + r0, a.logits, a.targets + r0, rows, V);
      continue;
    }
    be.cross_entropy_fused(a.losses + r0, a.logits, a.logits, a.targets + r0, dloss, rows, V);  // dlogits in place
    // each chunk's rows of dxf, overwritten (no zeroing first)
    be.matmul_backward_t(a.dxn + static_cast<size_t>(r0) * C, DType::F32, false, a.logits, DType::F32, m.lm_head, rows, C, V);
  }
  std::vector<float> losses(static_cast<size_t>(N));
  be.download(losses.data(), a.losses, losses.size() * sizeof(float));
  double sum = 0;
  for (float v : losses) sum += v;  // uncounted rows hold 0
  if (!backward) return sum;

  // backward: final norm, then the layers in reverse
  be.zero(a.dx, static_cast<size_t>(N) * C * sizeof(float));
  be.rmsnorm_backward(a.dx, nullptr, a.dxn, x_in(a, L), m.final_norm, a.rstdf, N, C);
  KeptWeights kept(be, a);
  for (int l = L - 1; l >= 0; l--) {
    check_cancel(cancel);
    if (a.mode == ActMode::TrainCheckpointed) {  // recompute this layer's activations from its saved input
      kept.next_layer();  // its converted weights serve the recomputation and then the backward
      if (a.ckpt_bf16) be.from_bf16(x_in(a, l), a.xs[static_cast<size_t>(l)], static_cast<size_t>(N) * C);
      layer_forward(m, ad, a, a.layer[0], p, l, x_in(a, l), x_in(a, l + 1), /*next=*/nullptr);  // recompute
    }
    layer_backward(m, ad, a, acts_of(a, l), p, l, x_in(a, l), dparams, l > 0);
  }
  // The embeddings are frozen: no embedding backward.
  return sum;
}

void model_row_logits(const Model& m, Activations& a, int row) {
  const int C = m.config.hidden_size, V = m.config.vocab_size;
  m.be->matmul_forward(a.logits, a.xf + static_cast<size_t>(row) * C, m.lm_head, nullptr, 1, C, V);
}

void model_logits(const Model& m, Activations& a, int row0, int rows, float* out) {
  const Backend& be = *m.be;
  const int C = m.config.hidden_size, V = m.config.vocab_size;
  for (int r = 0; r < rows; r += a.logit_rows) {
    const int n = std::min(a.logit_rows, rows - r);
    be.matmul_forward(a.logits, a.xf + static_cast<size_t>(row0 + r) * C, m.lm_head, nullptr, n, C, V);
    be.download(out + static_cast<size_t>(r) * V, a.logits, static_cast<size_t>(n) * V * sizeof(float));
  }
}

}  // namespace qt
