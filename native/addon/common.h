// Shared pieces of the N-API addon: error objects, argument errors, per-object busy leases, cancel flags and
// the Promise worker every long operation derives from. The addon does no math: it converts arguments,
// runs one engine call on a worker thread and converts the result (node-llama-cpp's addon is the model).
//
// Ownership: JS wrapper objects hold shared_ptr<...Handle>; every running worker holds the handles it uses,
// so garbage collection of a wrapper never frees memory an operation is using. dispose() frees at once.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine.h"

namespace qta {

// ---- errors ------------------------------------------------------------------------------------------

/** An error destined for JS: code (engine codes plus BUSY, DISPOSED), plain message, engine file/line. */
struct ErrorInfo {
  bool set = false;
  std::string code;
  std::string message;
  std::string file;
  int line = 0;
};

/** Thrown by argument parsing and state checks on the JS thread; becomes a rejected Promise (or a throw
 *  from sync methods) with the same code. */
struct JsFailure {
  std::string code;
  std::string message;
};

inline JsFailure InvalidArg(const std::string& message) { return {"INVALID_ARGUMENT", message}; }

Napi::Error MakeError(Napi::Env env, const ErrorInfo& info);
Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);

/** Runs body; a JsFailure or Napi::Error becomes a rejected Promise (async methods never throw). */
template <typename F>
Napi::Value PromiseGuard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const JsFailure& f) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(MakeError(env, f.code, f.message).Value());
    return d.Promise();
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

/** Runs body; a JsFailure becomes a thrown JS Error with .code (sync methods). */
template <typename F>
Napi::Value SyncGuard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const JsFailure& f) {
    throw MakeError(env, f.code, f.message);
  } catch (const qt::Error& e) {
    ErrorInfo info{true, qt::error_code_name(e.code()), e.what(), e.file() ? e.file() : "", e.line()};
    throw MakeError(env, info);
  }
}

// ---- busy leases -------------------------------------------------------------------------------------

/** Something one operation at a time may use. Only touched on the JS thread (acquire and release). */
struct Lockable {
  bool busy = false;
  bool disposed = false;
  virtual ~Lockable() = default;
};

/** Holds the busy flag of every object an operation uses; released when the operation settles. */
class Lease {
 public:
  Lease() = default;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Lease(Lease&& o) noexcept : held_(std::move(o.held_)) {}
  ~Lease() { Release(); }

  /** Marks all objects busy, or throws BUSY/DISPOSED (naming what) without marking any. */
  void Acquire(const std::vector<std::pair<std::shared_ptr<Lockable>, const char*>>& objects);
  void Release();

 private:
  std::vector<std::shared_ptr<Lockable>> held_;
};

// ---- cancel ------------------------------------------------------------------------------------------

using CancelFlag = std::shared_ptr<qt::CancelToken>;

/** The flag of a JS CancelToken argument, or a fresh private flag when the argument is undefined/null. */
CancelFlag CancelFlagFrom(Napi::Env env, const Napi::Value& v);

// ---- progress events and the Promise worker ----------------------------------------------------------

struct Event {
  enum Kind { Metrics, Token, Load } kind = Metrics;
  qt::StepMetrics metrics;
  int32_t token = 0;
  double fraction = 0;
  std::string stage;
};

/** Base of every long operation: runs Run() on a worker thread, forwards each Event to the JS thread in
 *  order and exactly once (AsyncProgressQueueWorker's queue is unbounded and is drained before completion),
 *  then settles one Promise. A JS progress callback that throws cancels the operation and its error rejects
 *  the Promise. */
class PromiseWorker : public Napi::AsyncProgressQueueWorker<Event> {
 public:
  PromiseWorker(Napi::Env env, const char* name, Lease lease, CancelFlag cancel, Napi::Value on_progress);
  /** Queues the work and returns its Promise. */
  Napi::Promise Start();

 protected:
  virtual void Run(const ExecutionProgress& progress) = 0;     // worker thread; may throw
  virtual Napi::Value Result(Napi::Env env) = 0;                // JS thread, on success
  virtual Napi::Value ProgressValue(Napi::Env env, const Event& e);  // JS thread: the callback argument
  virtual void Finished() {}                                    // JS thread, first thing when the work ends (any outcome)

  CancelFlag cancel_;

 private:
  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const Event* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

  Napi::Promise::Deferred deferred_;
  Lease lease_;
  Napi::FunctionReference on_progress_;
  Napi::Reference<Napi::Value> callback_error_;
  bool has_callback_error_ = false;
  ErrorInfo error_;
};

// ---- handles (what JS wrappers and workers share) ----------------------------------------------------

struct AdapterHandle;
struct TrainerHandle;

struct ModelHandle : Lockable {
  std::shared_ptr<qt::Model> model;
  qt::ModelConfig config;
  std::string device;
  std::vector<std::weak_ptr<AdapterHandle>> adapters;  // disposed with the model
  std::vector<std::weak_ptr<TrainerHandle>> trainers;
};

struct AdapterHandle : Lockable {
  std::shared_ptr<qt::Adapter> adapter;
  std::shared_ptr<ModelHandle> model;
  qt::LoraConfig config;
  bool from_trainer = false;  // a trainer's adapter (trained in place between steps)
};

/** Whatever create_trainer returns (a unique_ptr with an engine-side deleter, or a shared_ptr). */
using TrainerPtr = decltype(qt::create_trainer(std::declval<const std::shared_ptr<qt::Model>&>(), std::declval<const qt::TrainConfig&>(),
                                               std::declval<const std::string&>()));

struct TrainerHandle : Lockable {
  TrainerPtr trainer;
  std::shared_ptr<ModelHandle> model;
  std::shared_ptr<AdapterHandle> adapter;  // the adapter being trained
  bool adapter_exposed = false;            // JS holds it (trainer.adapter): it then outlives the trainer
  int64_t steps_per_epoch = 0;
  int64_t step_count = 0;                  // kept on the JS thread (from step metrics), readable while busy
};

/** Frees the engine objects now (children of a model first). Throws BUSY when an operation is running. */
void DisposeModel(const std::shared_ptr<ModelHandle>& h);
void DisposeAdapter(const std::shared_ptr<AdapterHandle>& h);
void DisposeTrainer(const std::shared_ptr<TrainerHandle>& h);

// ---- per-environment data: the wrapper classes' constructors ----------------------------------------

struct AddonData {
  Napi::FunctionReference model_ctor;
  Napi::FunctionReference adapter_ctor;
  Napi::FunctionReference trainer_ctor;
  Napi::FunctionReference cancel_ctor;
};

AddonData& Data(Napi::Env env);

// New JS wrappers around handles (JS thread).
Napi::Object NewModelObject(Napi::Env env, const std::shared_ptr<ModelHandle>& h);
Napi::Object NewAdapterObject(Napi::Env env, const std::shared_ptr<AdapterHandle>& h);
Napi::Object NewTrainerObject(Napi::Env env, const std::shared_ptr<TrainerHandle>& h);
/** The handle behind a JS Adapter (throws INVALID_ARGUMENT when v is not one). */
std::shared_ptr<AdapterHandle> AdapterFrom(Napi::Env env, const Napi::Value& v, const char* what);

/** loadModel(options, onProgress?, cancel?) -> Promise<Model> (module function). */
Napi::Value LoadModel(const Napi::CallbackInfo& info);

Napi::Function DefineModel(Napi::Env env);
Napi::Function DefineAdapter(Napi::Env env);
Napi::Function DefineTrainer(Napi::Env env);
Napi::Function DefineCancelToken(Napi::Env env);

}  // namespace qta
