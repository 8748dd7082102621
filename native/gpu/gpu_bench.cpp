// gpu_bench: our engine on a Llama-3-8B-architecture checkpoint with the tutorial recipe (NF4 + double quant,
// LoRA r=32 alpha 8 on q/k/v/o, dropout 0.1, gradient checkpointing, NEFTune 5, AdamW), on cuda:0:
//   load      load_model + quantize time (the safetensors were just written, so they sit in the page cache)
//   train     tokens/s and the engine's peak device memory at each batch x length (median of timed steps after
//             warm-up; each step ends with a device synchronisation), plus a per-op time breakdown of one step
//             (CUDA events around every backend op; "host gap" = step wall time minus the ops' GPU time)
//   gemv      the decode GEMV kernels alone on layer 0's weights (QT_CUDA_GEMV=4, 6, 7 with rows per warp auto, 7 also with
//             1 and 2; 3; 1), us per call; q/k/v and gate/up as one launch each (matmul_forward_many)
//   decode    single-stream greedy decode of 128 new tokens after a 64-token prompt
//   epoch     one epoch of short Q&A-like rows (lengths read from --lengths, the same list bench_torch.py uses)
//             with token-budget batching, and with padded batches of 4 as PyTorch runs it
// Usage: gpu_bench --model DIR [--json PATH] [--sizes 4x128,4x512,8x1024] [--steps 5] [--warmup 2]
//                  [--lengths FILE] [--budget 4096] [--skip gemv,decode,epoch,profile]
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "files.h"
#include "fixtures.h"
#include "gpu_common.h"
#include "model.h"
#include "rng.h"
#include "tools.h"

using namespace qg;
namespace fs = std::filesystem;
using qt::json::Value;

namespace {

qt::TrainConfig recipe(int batch_rows) {
  qt::TrainConfig c;  // ENGINE_FACTS §1
  c.lora.r = 32;
  c.lora.alpha = 8;
  c.lora.dropout = 0.1f;
  c.lora.targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  c.lr = 5e-5f;
  c.batch_rows = batch_rows;
  c.total_steps = 100000;
  c.warmup_steps = 0;
  c.schedule = qt::Schedule::Constant;
  c.neftune_alpha = 5;
  c.grad_checkpointing = true;
  c.seed = 42;
  return c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double gib(uint64_t b) { return static_cast<double>(b) / (1ull << 30); }

// one optimizer step, timed to the end of its device work
double timed_step(qt::Trainer& t, qt::StepMetrics* m = nullptr) {
  const auto t0 = Clock::now();
  qt::StepMetrics s = qt::trainer_step(t, nullptr);
  qt::cuda::synchronize();
  if (m) *m = s;
  return seconds_since(t0);
}

Value profile_step(qt::Trainer& t, double* wall, double* gpu_ms) {
  qt::cuda::profile_begin();
  *wall = timed_step(t);
  auto prof = qt::cuda::profile_end();
  Value arr = Value::new_array();
  *gpu_ms = 0;
  for (const auto& e : prof)
    if (e.name.find('.') == std::string::npos) *gpu_ms += e.ms;  // sections ("matmul.gemm") are inside ops
  for (const auto& e : prof) {
    arr.push(Value::new_object()
                 .set("op", Value::from_string(e.name))
                 .set("ms", Value::from_double(e.ms))
                 .set("calls", Value::from_int(e.calls)));
  }
  return arr;
}

void print_profile(const Value& prof, double wall, double gpu_ms) {
  std::printf("    per-op GPU time of one step (wall %.1f ms, ops %.1f ms, host gap %.1f ms):\n", wall * 1e3, gpu_ms, wall * 1e3 - gpu_ms);
  int shown = 0;
  for (const auto& e : prof.array) {
    if (shown++ >= 16) break;
    std::printf("      %-26s %9.2f ms %6lld calls\n", e.find("op")->string.c_str(), e.find("ms")->number,
                static_cast<long long>(e.find("calls")->integer));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, json_path, sizes = "4x128,4x512,8x1024", lengths_path, skip;
  int steps = 5, warmup = 2, budget = 4096;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--model") model_dir = next();
    else if (a == "--json") json_path = next();
    else if (a == "--sizes") sizes = next();
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--lengths") lengths_path = next();
    else if (a == "--budget") budget = std::stoi(next());
    else if (a == "--skip") skip = next();
  }
  auto skipped = [&](const char* what) { return ("," + skip + ",").find(std::string(",") + what + ",") != std::string::npos; };
  if (model_dir.empty()) {
    std::printf("usage: gpu_bench --model DIR [--json PATH] ...\n");
    return 2;
  }
  const std::string tmp = (fs::temp_directory_path() / "qt-gpu-bench").string();
  fs::create_directories(tmp);
  Value out = Value::new_object();
  int failures = 0;
  std::string device_name;
  for (const auto& d : qt::list_devices())
    if (d.backend == "cuda" && device_name.empty()) device_name = d.name;
  out.set("device", Value::from_string(device_name));
  out.set("engine_version", Value::from_string(qt::engine_version()));
  out.set("paths", Value::from_string(qt::cuda::active_paths()));
  std::printf("fast paths: %s\n", qt::cuda::active_paths().c_str());

  // ---- load + quantize ----
  std::shared_ptr<qt::Model> m;
  try {
    qt::LoadOptions o;
    o.folder = model_dir;
    o.device = "cuda:0";
    o.quant = qt::Quant::NF4;
    o.double_quant = true;
    const auto t0 = Clock::now();
    m = qt::load_model(o);
    qt::cuda::synchronize();
    const double s = seconds_since(t0);
    auto mem = qt::model_memory(*m);
    std::printf("load + quantize (NF4 + DQ): %.2f s, weights %.2f GiB\n", s, gib(mem.weights_bytes));
    out.set("load_seconds", Value::from_double(s)).set("weights_gib", Value::from_double(gib(mem.weights_bytes)));
  } catch (const qt::Error& e) {
    std::printf("FAILED to load: %s: %s\n", qt::error_code_name(e.code()), e.what());
    out.set("load_error", Value::from_string(e.what()));
    if (!json_path.empty()) qt::write_file(json_path, qt::json::dump(out));
    return 1;
  }
  const int V = m->config.vocab_size;

  // ---- training throughput and memory ----
  Value train = Value::new_array();
  std::stringstream ss(sizes);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t x = item.find('x');
    if (x == std::string::npos) continue;
    const int B = std::stoi(item.substr(0, x)), T = std::stoi(item.substr(x + 1));
    Value row = Value::new_object();
    row.set("batch", Value::from_int(B)).set("seq", Value::from_int(T));
    try {
      std::vector<qtest::Sample> samples;
      for (int b = 0; b < B; b++) {
        qtest::Sample s;
        for (int t = 0; t < T; t++) {
          s.ids.push_back(static_cast<int32_t>(qt::rng_u64(1000 + b, static_cast<uint64_t>(t)) % static_cast<uint64_t>(V)));
          s.mask.push_back(t == 0 ? 0 : 1);  // the tutorial trains on every token
        }
        samples.push_back(std::move(s));
      }
      const std::string set = tmp + "/train_" + item + ".qtds";
      qtest::write_qtds(set, samples, static_cast<uint32_t>(V));
      qt::cuda::release_workspace();
      qt::cuda::reset_peak(0);
      auto t = qt::create_trainer(m, recipe(B), set);
      for (int i = 0; i < warmup; i++) timed_step(*t);
      std::vector<double> times;
      qt::StepMetrics sm;
      for (int i = 0; i < steps; i++) times.push_back(timed_step(*t, &sm));
      const double med = median(times);
      const double tps = B * T / med;
      const double peak = gib(qt::cuda::memory_stats(0).peak);
      const qt::MemoryReport mr = qt::model_memory(*m);  // device-wide use now (context and other processes included)
      row.set("device_used_gib", Value::from_double(gib(mr.device_total_bytes - mr.device_free_bytes)))
          .set("activations_gib", Value::from_double(gib(mr.activations_bytes)))
          .set("lora_gib", Value::from_double(gib(mr.lora_bytes)))
          .set("workspace_gib", Value::from_double(gib(qt::cuda::memory_stats(0).workspace)));
      std::printf("train %dx%d: %.0f tokens/s (median step %.1f ms of %d; min %.1f, max %.1f), peak %.2f GiB (activations %.2f, "
                  "LoRA state %.2f, workspaces %.2f), loss %.3f\n", B, T, tps, med * 1e3, steps,
                  *std::min_element(times.begin(), times.end()) * 1e3, *std::max_element(times.begin(), times.end()) * 1e3, peak,
                  gib(mr.activations_bytes), gib(mr.lora_bytes), gib(qt::cuda::memory_stats(0).workspace), sm.loss);
      row.set("tokens_per_s", Value::from_double(tps))
          .set("median_step_ms", Value::from_double(med * 1e3))
          .set("peak_gib", Value::from_double(peak))
          .set("loss", Value::from_double(sm.loss));
      Value st = Value::new_array();
      for (double d : times) st.push(Value::from_double(d * 1e3));
      row.set("step_ms", std::move(st));
      if (!skipped("profile")) {
        double wall = 0, gpu_ms = 0;
        Value prof = profile_step(*t, &wall, &gpu_ms);
        print_profile(prof, wall, gpu_ms);
        row.set("profile", std::move(prof)).set("profile_wall_ms", Value::from_double(wall * 1e3)).set("profile_gpu_ms", Value::from_double(gpu_ms));
      }
    } catch (const qt::Error& e) {
      std::printf("train %dx%d FAILED: %s: %s\n", B, T, qt::error_code_name(e.code()), e.what());
      row.set("error", Value::from_string(e.what()));
      failures++;
    }
    std::fflush(stdout);
    train.push(std::move(row));
  }
  out.set("train", std::move(train));
  // QT_CUDA_DEQUANT=auto decides on the first large dequantization (during training): the paths as they ran
  std::printf("fast paths after training: %s\n", qt::cuda::active_paths().c_str());
  out.set("paths", Value::from_string(qt::cuda::active_paths()));

  // ---- the decode GEMV alone, per kernel and weight shape (layer 0's NF4 weights, one row of x) ----
  // Back-to-back launches timed by the wall clock to a device synchronisation: GPU time per call when the kernel
  // outlasts its launch, else the launch rate. GB/s counts the codes and the absmax bytes it must read.
  if (!skipped("gemv")) {
    try {
      const qt::Backend& be = *m->be;
      const qt::LayerWeights& lw = m->layers[0];
      std::vector<float> xh(static_cast<size_t>(std::max(m->config.intermediate_size, m->config.hidden_size)));
      for (size_t i = 0; i < xh.size(); i++) xh[i] = static_cast<float>(qt::rng_u64(91, i) % 2001) / 1000.0f - 1.0f;
      float* x = static_cast<float*>(be.alloc(xh.size() * 4));
      float* y = static_cast<float*>(be.alloc(static_cast<size_t>(m->config.intermediate_size) * 4));
      be.upload(x, xh.data(), xh.size() * 4);
      Value rows = Value::new_array();
      const char* names[] = {"q", "k", "v", "o", "gate", "up", "down"};
      std::printf("decode GEMV alone (layer 0, N=1; us per call, GB/s of codes + absmax):\n");
      std::printf("  %-6s %-12s", "weight", "shape");
      // gemv 4 with its rows per warp chosen by the weight (auto) and forced to 1 and 2; run 3's and run 2's kernels
      struct Mode {
        const char *gemv, *rows, *label;
      };
      const Mode modes[] = {{"4", "0", "4"}, {"6", "0", "6"}, {"7", "0", "7"}, {"7", "1", "7r1"}, {"7", "2", "7r2"},
                            {"3", "0", "3"}, {"1", "0", "1"}};
      for (const Mode& md : modes) std::printf("  gemv=%-4s       ", md.label);
      std::printf("\n");
      for (int t = 0; t < 7; t++) {
        const qt::Weight& w = lw.lin[t];
        const int OC = static_cast<int>(w.rows), C = static_cast<int>(w.cols);
        const double bytes = static_cast<double>(OC) * C / 2 + static_cast<double>(OC) * C / 64 * (w.double_quant ? 1 : 4);
        std::printf("  %-6s %5dx%-6d", names[t], OC, C);
        Value row = Value::new_object().set("weight", Value::from_string(names[t])).set("OC", Value::from_int(OC)).set("C", Value::from_int(C));
        for (const Mode& md : modes) {
          qt::cuda::set_path("gemv", md.gemv);
          qt::cuda::set_path("gemv_rows", md.rows);
          for (int i = 0; i < 20; i++) be.matmul_forward(y, x, w, nullptr, 1, C, OC);
          qt::cuda::synchronize();
          const int iters = 300;
          const auto t0 = Clock::now();
          for (int i = 0; i < iters; i++) be.matmul_forward(y, x, w, nullptr, 1, C, OC);
          qt::cuda::synchronize();
          const double us = seconds_since(t0) * 1e6 / iters;
          std::printf("  %7.2f %6.0f", us, bytes / us / 1e3);
          row.set(std::string("us_gemv") + md.label, Value::from_double(us));
        }
        std::printf("\n");
        rows.push(std::move(row));
      }
      qt::cuda::set_path("gemv", std::getenv("QT_CUDA_GEMV") ? std::getenv("QT_CUDA_GEMV") : "7");
      qt::cuda::set_path("gemv_rows", "0");
      // the layer's weights that share an input, one launch each group (what a decode step runs), gemv 4 and 6
      for (const char* gm : {"4", "6", "7"})
      for (const auto& grp : {std::vector<int>{0, 1, 2}, std::vector<int>{4, 5}}) {
        qt::cuda::set_path("gemv", gm);
        std::vector<float*> outs;
        std::vector<const qt::Weight*> ws;
        std::vector<const float*> bs;
        double bytes = 0;
        for (int t : grp) {
          const qt::Weight& w = lw.lin[t];
          ws.push_back(&w);
          bs.push_back(nullptr);
          outs.push_back(static_cast<float*>(be.alloc(static_cast<size_t>(w.rows) * 4)));
          bytes += static_cast<double>(w.rows) * w.cols / 2 + static_cast<double>(w.rows) * w.cols / 64;
        }
        const int C = static_cast<int>(ws[0]->cols), K = static_cast<int>(grp.size());
        for (int i = 0; i < 20; i++) be.matmul_forward_many(outs.data(), x, ws.data(), bs.data(), K, 1, C);
        qt::cuda::synchronize();
        const int iters = 300;
        const auto t0 = Clock::now();
        for (int i = 0; i < iters; i++) be.matmul_forward_many(outs.data(), x, ws.data(), bs.data(), K, 1, C);
        qt::cuda::synchronize();
        const double us = seconds_since(t0) * 1e6 / iters;
        const char* name = K == 3 ? "q+k+v" : "gate+up";
        std::printf("  %-8s one launch (gemv=%s): %7.2f us (%4.0f GB/s)\n", name, gm, us, bytes / us / 1e3);
        rows.push(Value::new_object().set("weight", Value::from_string(name)).set("gemv", Value::from_string(gm)).set("us_one_launch", Value::from_double(us)));
        for (float* o : outs) be.free(o);
      }
      qt::cuda::set_path("gemv", std::getenv("QT_CUDA_GEMV") ? std::getenv("QT_CUDA_GEMV") : "7");
      qt::cuda::set_path("gemv_rows", std::getenv("QT_CUDA_GEMV_ROWS") ? std::getenv("QT_CUDA_GEMV_ROWS") : "0");
      be.free(x);
      be.free(y);
      out.set("gemv", std::move(rows));
    } catch (const std::exception& e) {
      std::printf("gemv FAILED: %s\n", e.what());
      failures++;
    }
  }

  // ---- decode ----
  if (!skipped("decode")) {
    try {
      std::vector<int32_t> prompt;
      for (int i = 0; i < 64; i++) prompt.push_back(static_cast<int32_t>(qt::rng_u64(77, static_cast<uint64_t>(i)) % static_cast<uint64_t>(V)));
      qt::SamplingConfig s;
      s.max_new_tokens = 8;
      qt::generate(m, nullptr, prompt, s, nullptr, nullptr);  // warm-up
      s.max_new_tokens = 128;
      qt::cuda::reset_peak(0);
      auto r = qt::generate(m, nullptr, prompt, s, nullptr, nullptr);
      const double tps = static_cast<double>(r.tokens.size()) / r.decode_seconds;
      std::printf("decode: %zu tokens in %.3f s = %.1f tokens/s (prefill of 64 tokens %.1f ms), peak %.2f GiB\n", r.tokens.size(),
                  r.decode_seconds, tps, r.prompt_seconds * 1e3, gib(qt::cuda::memory_stats(0).peak));
      double tps_nopdl = 0;
      bool same_tokens = false;
      {  // the same decode without programmatic dependent launch: its speed, and the same greedy tokens
        qt::cuda::set_path("pdl", "0");
        auto r0 = qt::generate(m, nullptr, prompt, s, nullptr, nullptr);
        qt::cuda::set_path("pdl", std::getenv("QT_CUDA_PDL") ? std::getenv("QT_CUDA_PDL") : "2");
        tps_nopdl = static_cast<double>(r0.tokens.size()) / r0.decode_seconds;
        same_tokens = r0.tokens == r.tokens;
        std::printf("decode with QT_CUDA_PDL=0: %.1f tokens/s; the same %zu greedy tokens as with PDL: %s\n", tps_nopdl,
                    r.tokens.size(), same_tokens ? "yes" : "NO");
        if (!same_tokens) failures++;
      }
      {  // where a decode step's time goes: 16 tokens under the profiler (per token below)
        s.max_new_tokens = 17;
        qt::cuda::synchronize();
        qt::cuda::profile_begin();
        const auto tp = Clock::now();
        auto rp = qt::generate(m, nullptr, prompt, s, nullptr, nullptr);
        const double wall = seconds_since(tp) - rp.prompt_seconds;
        auto prof = qt::cuda::profile_end();
        Value arr = Value::new_array();
        for (const auto& e : prof) arr.push(Value::new_object().set("op", Value::from_string(e.name)).set("ms", Value::from_double(e.ms)).set("calls", Value::from_int(e.calls)));
        std::printf("    decode per-op GPU time over %zu tokens incl. a 64-token prefill (decode wall %.1f ms):\n", rp.tokens.size(), wall * 1e3);
        int shown = 0;
        for (const auto& e : prof) {
          if (shown++ >= 12) break;
          std::printf("      %-26s %9.2f ms %6d calls\n", e.name.c_str(), e.ms, e.calls);
        }
        out.set("decode_profile", std::move(arr));
      }
      {  // host vs GPU of one token step (embedding to the final norm; no lm_head, no logits download): with the
         // stream held for 100 ms by a host callback, the host's time to queue the step's ~550 launches is its own
         // cost, and the time the stream then needs to drain is the GPU's (one step at a time: the driver's queue
         // of pending launches is finite, more steps would block the host on it). Median of 7; plus the step timed
         // to a synchronisation with nothing held, as decoding runs it.
        qt::Activations acts;
        qt::KvCache kv;
        const int P = 64, reps = 7;
        qt::alloc_kv_cache(kv, *m, P + 2 * reps + 2);
        qt::alloc_activations(acts, *m, qt::ActMode::Inference, P, 0, 0);
        m->be->upload(acts.ids, prompt.data(), static_cast<size_t>(P) * sizeof(int32_t));
        qt::Pass pp;
        pp.B = 1;
        pp.T = P;
        pp.cache = &kv;
        qt::model_forward(*m, nullptr, acts, pp, nullptr);
        int pos = P;
        auto step = [&]() {
          qt::Pass p1;
          p1.B = 1;
          p1.T = 1;
          p1.pos0 = pos++;
          p1.cache = &kv;
          qt::model_forward(*m, nullptr, acts, p1, nullptr);
        };
        step();  // warm
        qt::cuda::synchronize();
        const double hold_ms = 100;
        std::vector<double> host, gpu, plain;
        for (int r = 0; r < reps; r++) {
          const auto t0 = Clock::now();
          qt::cuda::hold_stream(hold_ms);
          step();
          const double enq = seconds_since(t0) * 1e3;
          qt::cuda::synchronize();
          const double tot = seconds_since(t0) * 1e3;
          host.push_back(enq);
          gpu.push_back(enq < hold_ms ? tot - hold_ms : -1);
          const auto t1 = Clock::now();
          step();
          qt::cuda::synchronize();
          plain.push_back(seconds_since(t1) * 1e3);
        }
        std::printf("    decode step (no lm_head), median of %d: host queues it in %.3f ms, the GPU runs it in %.3f ms; "
                    "queued and run as decoding does: %.3f ms\n", reps, median(host), median(gpu), median(plain));
        out.set("decode_host_vs_gpu", Value::new_object()
                                          .set("host_ms_per_step", Value::from_double(median(host)))
                                          .set("gpu_ms_per_step", Value::from_double(median(gpu)))
                                          .set("step_ms", Value::from_double(median(plain))));
      }
      out.set("decode", Value::new_object()
                            .set("tokens", Value::from_int(static_cast<int64_t>(r.tokens.size())))
                            .set("tokens_per_s", Value::from_double(tps))
                            .set("tokens_per_s_without_pdl", Value::from_double(tps_nopdl))
                            .set("same_tokens_without_pdl", Value::from_bool(same_tokens))
                            .set("prefill_ms", Value::from_double(r.prompt_seconds * 1e3))
                            .set("total_tokens_per_s", Value::from_double(static_cast<double>(r.tokens.size()) / (r.decode_seconds + r.prompt_seconds))));
    } catch (const qt::Error& e) {
      std::printf("decode FAILED: %s\n", e.what());
      out.set("decode_error", Value::from_string(e.what()));
      failures++;
    }
  }

  // ---- an epoch of short Q&A rows: token budget vs padded batches of 4 ----
  if (!skipped("epoch") && !lengths_path.empty()) {
    Value ep = Value::new_object();
    try {
      auto lj = qt::json::parse(qt::read_text_file(lengths_path), lengths_path);
      std::vector<qtest::Sample> samples;
      int64_t real = 0;
      for (const auto& L : lj.find("lengths")->array) {
        qtest::Sample s;
        const int len = static_cast<int>(L.integer);
        for (int t = 0; t < len; t++) {
          s.ids.push_back(static_cast<int32_t>(qt::rng_u64(5000 + samples.size(), static_cast<uint64_t>(t)) % static_cast<uint64_t>(V)));
          s.mask.push_back(t == 0 ? 0 : 1);
        }
        real += len;
        samples.push_back(std::move(s));
      }
      const std::string set = tmp + "/epoch.qtds";
      qtest::write_qtds(set, samples, static_cast<uint32_t>(V));
      ep.set("rows", Value::from_int(static_cast<int64_t>(samples.size()))).set("real_tokens", Value::from_int(real));
      for (bool tb : {true, false}) {
        qt::TrainConfig c = recipe(4);
        c.token_budget_batching = tb;
        c.token_budget = budget;
        qt::cuda::reset_peak(0);
        auto t = qt::create_trainer(m, c, set);
        const int64_t spe = qt::trainer_steps_per_epoch(*t);
        timed_step(*t);  // warm-up (then the epoch's remaining steps and the next epoch's first: one epoch's worth)
        int64_t tokens = 0, padded = 0;
        double secs = 0;
        for (int64_t i = 0; i < spe; i++) {
          qt::StepMetrics sm;
          secs += timed_step(*t, &sm);
          tokens += sm.tokens;
          padded += sm.padded_tokens;
        }
        const double tps = static_cast<double>(tokens) / secs;
        const char* key = tb ? "token_budget" : "padded_batches_of_4";
        std::printf("epoch (%s): %lld steps, %lld real tokens (%lld padded) in %.2f s = %.0f real tokens/s, peak %.2f GiB\n", key,
                    static_cast<long long>(spe), static_cast<long long>(tokens), static_cast<long long>(padded), secs, tps,
                    gib(qt::cuda::memory_stats(0).peak));
        ep.set(key, Value::new_object()
                        .set("steps", Value::from_int(spe))
                        .set("tokens", Value::from_int(tokens))
                        .set("padded_tokens", Value::from_int(padded))
                        .set("seconds", Value::from_double(secs))
                        .set("tokens_per_s", Value::from_double(tps))
                        .set("peak_gib", Value::from_double(gib(qt::cuda::memory_stats(0).peak))));
      }
      ep.set("token_budget_setting", Value::from_int(budget));
    } catch (const qt::Error& e) {
      std::printf("epoch FAILED: %s\n", e.what());
      ep.set("error", Value::from_string(e.what()));
      failures++;
    }
    out.set("epoch", std::move(ep));
  }
  if (!json_path.empty()) qt::write_file(json_path, qt::json::dump(out) + "\n");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return failures;
}
