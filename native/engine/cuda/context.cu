// Device state of the CUDA backend: per-device contexts (stream, workspace, profiler), device memory with
// the engine's own counters (what the benchmark reports as peak memory), host<->device copies, device
// selection and the device list. Errors: a failed allocation is qt::Error(OutOfMemory) with the sizes in
// the message; any other CUDA error is qt::Error(Device) with CUDA's error string.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>

#include "ops.cuh"
#include "tools.h"

namespace qt::cuda {

void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the device stays usable
    throw Error(ErrorCode::OutOfMemory, std::string("GPU out of memory (") + what + ")", file, line);
  }
  throw Error(ErrorCode::Device, std::string("CUDA error: ") + cudaGetErrorString(err) + " (" + what + ")", file, line);
}

namespace {

// Process-wide registry of device contexts (the backend table has no context argument; see common.cuh).
std::mutex g_registry_mu;
std::vector<std::unique_ptr<DeviceCtx>> g_ctx;

// The engine's device allocations: pointer -> (bytes, device), and per-device counters.
struct Counters {
  uint64_t current = 0, peak = 0, workspace = 0;
};
std::mutex g_alloc_mu;
std::unordered_map<void*, std::pair<size_t, int>> g_allocs;
std::map<int, Counters> g_counters;

void count_alloc(void* p, size_t bytes, int dev, bool is_workspace) {
  std::lock_guard<std::mutex> lk(g_alloc_mu);
  g_allocs[p] = {bytes, dev};
  Counters& c = g_counters[dev];
  c.current += bytes;
  if (is_workspace) c.workspace += bytes;
  c.peak = std::max(c.peak, c.current);
}

// Returns the allocation's device, or -1 when the pointer is not ours.
int count_free(void* p, bool is_workspace) {
  std::lock_guard<std::mutex> lk(g_alloc_mu);
  auto it = g_allocs.find(p);
  if (it == g_allocs.end()) return -1;
  Counters& c = g_counters[it->second.second];
  c.current -= it->second.first;
  if (is_workspace) c.workspace -= it->second.first;
  const int dev = it->second.second;
  g_allocs.erase(it);
  return dev;
}

int current_device() {
  int d = 0;
  QT_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

// cudaMalloc with a message that says how much was asked and what was free.
void* device_malloc(size_t bytes, bool is_workspace) {
  if (bytes == 0) bytes = 256;
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    QT_FAIL(ErrorCode::OutOfMemory, "GPU out of memory allocating " + std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB (" +
                                        std::to_string(free_b >> 20) + " of " + std::to_string(total_b >> 20) + " MiB free)");
  }
  QT_CUDA_CHECK(err);
  count_alloc(p, bytes, current_device(), is_workspace);
  return p;
}

void device_free(void* p, bool is_workspace) {
  if (!p) return;
  const int dev = count_free(p, is_workspace);
  int cur = 0;
  if (dev >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != dev) {
    cudaSetDevice(dev);
    cudaFree(p);
    cudaSetDevice(cur);
  } else {
    cudaFree(p);
  }
}

}  // namespace

DeviceCtx& device_ctx() {
  const int d = current_device();
  std::lock_guard<std::mutex> lk(g_registry_mu);
  if (static_cast<int>(g_ctx.size()) <= d) g_ctx.resize(static_cast<size_t>(d) + 1);
  if (!g_ctx[static_cast<size_t>(d)]) {
    auto c = std::make_unique<DeviceCtx>();
    c->device = d;
    QT_CUDA_CHECK(cudaGetDeviceProperties(&c->prop, d));
    QT_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    nf4_init_constants();
    g_ctx[static_cast<size_t>(d)] = std::move(c);
  }
  return *g_ctx[static_cast<size_t>(d)];
}

void* workspace(DeviceCtx& c, size_t bytes) {
  if (bytes <= c.ws_bytes) return c.ws;
  // grow to the request rounded up to 64 MiB (cudaFree waits for the device, so no queued op still uses it)
  const size_t want = (bytes + (size_t{64} << 20) - 1) / (size_t{64} << 20) * (size_t{64} << 20);
  device_free(c.ws, true);
  c.ws = nullptr;
  c.ws_bytes = 0;
  c.xconv_src = nullptr;  // the cached input copy lived there
  c.ws = device_malloc(want, true);
  c.ws_bytes = want;
  return c.ws;
}

// ---- fast-path switches -------------------------------------------------------------------------------

namespace {

bool env_is(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, value) == 0;
}

Paths& mutable_paths() {
  static Paths p = [] {
    Paths d;
    if (env_is("QT_CUDA_ATTN", "simt")) d.attn = Paths::kAttnSimt;
    if (env_is("QT_CUDA_ATTN", "tc")) d.attn = Paths::kAttnTc;
    if (env_is("QT_CUDA_ATTN_FWD_MT", "1")) d.attn_fwd_mt = 1;
    if (env_is("QT_CUDA_ATTN_DS", "0")) d.attn_ds = false;
    if (env_is("QT_CUDA_ATTN_SPLIT", "1")) d.attn_split = 1;
    if (env_is("QT_CUDA_ATTN_SPLIT", "0")) d.attn_split = 0;
    if (env_is("QT_CUDA_GEMV", "0")) d.gemv = 0;
    if (env_is("QT_CUDA_GEMV", "1")) d.gemv = 1;  // run 2's kernel
    if (env_is("QT_CUDA_GEMV", "3")) d.gemv = 3;  // run 3's kernel
    if (env_is("QT_CUDA_GEMV", "4")) d.gemv = 4;  // x staged in shared memory
    if (env_is("QT_CUDA_GEMV", "6")) d.gemv = 6;  // 4 with offset table lookups (default: 7, 6 with the fp16 pair table)
    for (const char* r : {"1", "2"})
      if (env_is("QT_CUDA_GEMV_ROWS", r)) d.gemv_rows = r[0] - '0';
    if (env_is("QT_CUDA_DEQUANT", "simple")) d.dequant = Paths::kDqSimple;
    if (env_is("QT_CUDA_DEQUANT", "vec")) d.dequant = Paths::kDqVec;
    if (env_is("QT_CUDA_DEQUANT", "vec2")) d.dequant = Paths::kDqVec2;
    if (env_is("QT_CUDA_LORA", "cublas")) d.lora = Paths::kLoraCublas;  // exact fp32 GEMMs whatever the compute dtype
    if (env_is("QT_CUDA_LORA", "fused")) d.lora = Paths::kLoraFused;    // (default tf32: TF32 GEMMs for 16-bit compute)
    if (env_is("QT_CUDA_XCACHE", "0")) d.xcache = false;
    if (env_is("QT_CUDA_DECODE", "0")) d.decode = false;
    if (env_is("QT_CUDA_PDL", "0")) d.pdl = 0;
    if (env_is("QT_CUDA_PDL", "1")) d.pdl = 1;
    return d;
  }();
  return p;
}

}  // namespace

const Paths& paths() { return mutable_paths(); }

bool pdl_enabled() { return paths().pdl != 0 && device_ctx().prop.major >= 9; }

bool set_path(const std::string& name, const std::string& value) {
  Paths& p = mutable_paths();
  if (name == "attn" && (value == "tc16" || value == "tc" || value == "simt"))
    p.attn = value == "tc16" ? Paths::kAttnTc16 : value == "tc" ? Paths::kAttnTc : Paths::kAttnSimt;
  else if (name == "attn_fwd_mt" && (value == "1" || value == "2")) p.attn_fwd_mt = value[0] - '0';
  else if (name == "attn_split" && (value == "auto" || value == "1" || value == "0")) p.attn_split = value == "auto" ? -1 : value[0] - '0';
  else if (name == "attn_ds" && (value == "1" || value == "0")) p.attn_ds = value == "1";
  else if (name == "gemv" && (value == "7" || value == "6" || value == "4" || value == "3" || value == "1" || value == "0")) p.gemv = value[0] - '0';
  else if (name == "gemv_rows" && (value == "0" || value == "1" || value == "2")) p.gemv_rows = value[0] - '0';
  else if (name == "dequant" && (value == "auto" || value == "vec2" || value == "vec" || value == "simple"))
    p.dequant = value == "auto" ? Paths::kDqAuto : value == "vec2" ? Paths::kDqVec2 : value == "vec" ? Paths::kDqVec : Paths::kDqSimple;
  else if (name == "lora" && (value == "tf32" || value == "cublas" || value == "fused"))
    p.lora = value == "tf32" ? Paths::kLoraTf32 : value == "cublas" ? Paths::kLoraCublas : Paths::kLoraFused;
  else if (name == "xcache" && (value == "1" || value == "0")) p.xcache = value == "1";
  else if (name == "decode" && (value == "1" || value == "0")) p.decode = value == "1";
  else if (name == "pdl" && (value == "1" || value == "2" || value == "0")) p.pdl = value[0] - '0';
  else return false;
  return true;
}

std::string active_paths() {
  const Paths& p = paths();
  const char* ck = std::getenv("QT_CKPT_BF16");
  const char* ru = std::getenv("QT_DEQUANT_REUSE");
  return std::string("attn=") + (p.attn == Paths::kAttnTc16 ? "tc16" : p.attn == Paths::kAttnTc ? "tc" : "simt") +
         (p.attn_fwd_mt == 2 ? std::string() : " attn_fwd_mt=" + std::to_string(p.attn_fwd_mt)) +
         (p.attn_split < 0 ? std::string() : " attn_split=" + std::to_string(p.attn_split)) + (p.attn_ds ? "" : " attn_ds=0") +
         " gemv=" + std::to_string(p.gemv) +
         (p.gemv >= 4 && p.gemv_rows ? "/rows" + std::to_string(p.gemv_rows) : std::string()) +
         " dequant=" + (p.dequant == Paths::kDqAuto ? "auto" + dequant_auto_choice() : p.dequant == Paths::kDqVec2 ? std::string("vec2") : p.dequant == Paths::kDqVec ? std::string("vec") : std::string("simple")) + " lora=" + (p.lora == Paths::kLoraTf32 ? "tf32" : p.lora == Paths::kLoraCublas ? "cublas" : "fused") +
         " xcache=" + (p.xcache ? "1" : "0") + " decode=" + (p.decode ? "1" : "0") + " pdl=" + std::to_string(p.pdl) + " ckpt_bf16=" + (ck ? ck : "auto") +
         " reuse=" + (ru ? ru : "auto");
}

// ---- profiling ----------------------------------------------------------------------------------------

int profile_mark_begin(DeviceCtx& c, const char* name) {
  if (!c.profiling) return -1;
  auto event = [&]() {
    if (c.events_used == c.event_pool.size()) {
      cudaEvent_t e;
      QT_CUDA_CHECK(cudaEventCreate(&e));
      c.event_pool.push_back(e);
    }
    return c.event_pool[c.events_used++];
  };
  ProfileMark m{name, event(), event()};
  QT_CUDA_CHECK(cudaEventRecord(m.start, c.stream));
  c.marks.push_back(m);
  return static_cast<int>(c.marks.size()) - 1;
}

void profile_mark_end(DeviceCtx& c, int mark) {
  if (mark >= 0) cudaEventRecord(c.marks[static_cast<size_t>(mark)].stop, c.stream);
}

Op::Op(const char* name, bool keeps_inputs) : c(device_ctx()), s(c.stream), lock_(c.mu) {
  if (!keeps_inputs) c.op_seq++;
  mark_ = profile_mark_begin(c, name);
}

void note_write(DeviceCtx& c, const void* p, size_t bytes) {
  if (!c.xconv_src || !p) return;
  const char* a = static_cast<const char*>(p);
  const char* src = static_cast<const char*>(c.xconv_src);
  if (a < src + c.xconv_n * sizeof(float) && src < a + bytes) c.xconv_src = nullptr;
}
Op::~Op() { profile_mark_end(c, mark_); }

Section::Section(DeviceCtx& c, const char* name) : c_(c) { mark_ = profile_mark_begin(c, name); }
Section::~Section() { profile_mark_end(c_, mark_); }

void profile_begin() {
  DeviceCtx& c = device_ctx();
  std::lock_guard<std::mutex> lk(c.mu);
  c.marks.clear();
  c.events_used = 0;
  c.profiling = true;
}

std::vector<ProfileEntry> profile_end() {
  DeviceCtx& c = device_ctx();
  std::lock_guard<std::mutex> lk(c.mu);
  c.profiling = false;
  QT_CUDA_CHECK(cudaStreamSynchronize(c.stream));
  std::map<std::string, ProfileEntry> sum;
  for (const auto& m : c.marks) {
    float ms = 0;
    QT_CUDA_CHECK(cudaEventElapsedTime(&ms, m.start, m.stop));
    ProfileEntry& e = sum[m.name];
    e.name = m.name;
    e.ms += ms;
    e.calls++;
  }
  c.marks.clear();
  c.events_used = 0;
  std::vector<ProfileEntry> out;
  for (auto& kv : sum) out.push_back(kv.second);
  std::sort(out.begin(), out.end(), [](const ProfileEntry& a, const ProfileEntry& b) { return a.ms > b.ms; });
  return out;
}

void synchronize() {
  DeviceCtx& c = device_ctx();
  QT_CUDA_CHECK(cudaStreamSynchronize(c.stream));
}

namespace {
void CUDART_CB sleep_callback(void* ms) {
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(*static_cast<double*>(ms)));
  delete static_cast<double*>(ms);
}
}  // namespace

void hold_stream(double ms) {
  DeviceCtx& c = device_ctx();
  QT_CUDA_CHECK(cudaLaunchHostFunc(c.stream, sleep_callback, new double(ms)));
}

void release_workspace() {
  DeviceCtx& c = device_ctx();
  std::lock_guard<std::mutex> lk(c.mu);
  device_free(c.ws, true);
  c.ws = nullptr;
  c.ws_bytes = 0;
  c.xconv_src = nullptr;
}

MemoryStats memory_stats(int device) {
  std::lock_guard<std::mutex> lk(g_alloc_mu);
  const Counters& c = g_counters[device];
  return MemoryStats{c.current, c.peak, c.workspace};
}

void reset_peak(int device) {
  std::lock_guard<std::mutex> lk(g_alloc_mu);
  Counters& c = g_counters[device];
  c.peak = c.current;
}

// ---- the table's device and memory entries ----------------------------------------------------------

void set_device(int index) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    QT_FAIL(ErrorCode::Device, std::string("no usable NVIDIA GPU: ") + cudaGetErrorString(err) +
                                   " (is the NVIDIA driver installed and recent enough?)");
  }
  if (index < 0 || index >= count)
    QT_FAIL(ErrorCode::InvalidArgument, "device cuda:" + std::to_string(index) + " does not exist (this machine has " +
                                            std::to_string(count) + " CUDA device" + (count == 1 ? "" : "s") + ")");
  QT_CUDA_CHECK(cudaSetDevice(index));
}

void* alloc(size_t bytes) {
  device_ctx();  // the device's context exists before its first buffer
  return device_malloc(bytes, false);
}

void free(void* ptr) {
  try {
    device_free(ptr, false);
  } catch (...) {  // destructors call this: never throw
  }
}

void upload(void* dst, const void* host_src, size_t bytes) {
  if (!bytes) return;
  Op op("upload");
  // From pageable memory the call returns once the source has been staged, so the caller may reuse it.
  QT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, op.s));
}

void download(void* host_dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Op op("download");
  QT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, op.s));
  QT_CUDA_CHECK(cudaStreamSynchronize(op.s));
}

void copy(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Op op("copy");
  QT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, op.s));
}

void zero(void* dst, size_t bytes) {
  if (!bytes) return;
  Op op("zero");
  QT_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, op.s));
}

void memory_info(uint64_t* free_bytes, uint64_t* total_bytes) {
  size_t f = 0, t = 0;
  QT_CUDA_CHECK(cudaMemGetInfo(&f, &t));
  *free_bytes = f;
  *total_bytes = t;
}

bool native_bf16() { return device_ctx().prop.major >= 8; }

void list_devices(std::vector<DeviceInfo>& out) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {  // no driver / no GPU: just no CUDA devices
    cudaGetLastError();
    return;
  }
  int prev = 0;
  cudaGetDevice(&prev);
  for (int i = 0; i < count; i++) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    DeviceInfo d;
    d.backend = "cuda";
    d.index = i;
    d.name = p.name;
    d.total_bytes = p.totalGlobalMem;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.bf16 = p.major >= 8;
    size_t f = 0, t = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&f, &t) == cudaSuccess) {
      d.free_bytes = f;
      d.total_bytes = t;
    } else {
      cudaGetLastError();
    }
    out.push_back(d);
  }
  cudaSetDevice(prev);
}

}  // namespace qt::cuda
