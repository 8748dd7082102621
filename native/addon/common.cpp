// Error objects, busy leases, disposal and the Promise worker base (see common.h).
#include "common.h"

#include <algorithm>
#include <new>

namespace qta {

// The engine's __FILE__ is the build machine's absolute path: keep it from "engine/" on (engine/safetensors.cpp).
static std::string ShortSourcePath(const std::string& file) {
  for (const char* marker : {"engine/", "engine\\"}) {
    size_t at = file.rfind(marker);
    if (at != std::string::npos) return file.substr(at);
  }
  return file;
}

Napi::Error MakeError(Napi::Env env, const ErrorInfo& info) {
  Napi::Error e = Napi::Error::New(env, info.message);
  e.Set("code", Napi::String::New(env, info.code));
  if (!info.file.empty()) {
    e.Set("file", Napi::String::New(env, ShortSourcePath(info.file)));
    e.Set("line", Napi::Number::New(env, info.line));
  }
  return e;
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  ErrorInfo info;
  info.set = true;
  info.code = code;
  info.message = message;
  return MakeError(env, info);
}

// ---- leases --------------------------------------------------------------------------------------------

void Lease::Acquire(const std::vector<std::pair<std::shared_ptr<Lockable>, const char*>>& objects) {
  for (const auto& [obj, what] : objects) {
    if (!obj) continue;
    if (obj->disposed) throw JsFailure{"DISPOSED", std::string("The ") + what + " was disposed and can no longer be used."};
    if (obj->busy) {
      throw JsFailure{"BUSY", std::string("The ") + what +
                                  " is busy with another operation (one at a time). Wait for it to finish or cancel it first."};
    }
  }
  for (const auto& [obj, what] : objects) {
    (void)what;
    if (!obj || std::find(held_.begin(), held_.end(), obj) != held_.end()) continue;
    obj->busy = true;
    held_.push_back(obj);
  }
}

void Lease::Release() {
  for (auto& obj : held_) obj->busy = false;
  held_.clear();
}

// ---- disposal ------------------------------------------------------------------------------------------

void DisposeAdapter(const std::shared_ptr<AdapterHandle>& h) {
  if (!h || h->disposed) return;
  if (h->busy) throw JsFailure{"BUSY", "The adapter is in use by a running operation. Wait for it or cancel it, then dispose."};
  h->adapter.reset();
  h->disposed = true;
}

void DisposeTrainer(const std::shared_ptr<TrainerHandle>& h) {
  if (!h || h->disposed) return;
  if (h->busy) throw JsFailure{"BUSY", "The trainer is running an operation. Cancel it and wait for it to settle, then dispose."};
  h->trainer.reset();
  h->disposed = true;
  // The trained adapter outlives the trainer only if JS holds it (trainer.adapter); otherwise free it now.
  if (h->adapter && !h->adapter_exposed) DisposeAdapter(h->adapter);
  h->adapter.reset();
}

void DisposeModel(const std::shared_ptr<ModelHandle>& h) {
  if (!h || h->disposed) return;
  if (h->busy) throw JsFailure{"BUSY", "The model is running an operation. Cancel it and wait for it to settle, then dispose."};
  for (auto& w : h->trainers) {
    if (auto t = w.lock()) DisposeTrainer(t);
  }
  for (auto& w : h->adapters) {
    if (auto a = w.lock()) DisposeAdapter(a);
  }
  h->trainers.clear();
  h->adapters.clear();
  h->model.reset();
  h->disposed = true;
}

// ---- the Promise worker ------------------------------------------------------------------------------

PromiseWorker::PromiseWorker(Napi::Env env, const char* name, Lease lease, CancelFlag cancel, Napi::Value on_progress)
    : Napi::AsyncProgressQueueWorker<Event>(env, name),
      cancel_(cancel ? std::move(cancel) : std::make_shared<qt::CancelToken>(false)),
      deferred_(Napi::Promise::Deferred::New(env)),
      lease_(std::move(lease)) {
  if (!on_progress.IsEmpty() && on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
}

Napi::Promise PromiseWorker::Start() {
  Napi::Promise p = deferred_.Promise();
  Queue();
  return p;
}

Napi::Value PromiseWorker::ProgressValue(Napi::Env env, const Event&) { return env.Undefined(); }

void PromiseWorker::Execute(const ExecutionProgress& progress) {
  try {
    Run(progress);
  } catch (const qt::Error& e) {
    error_ = {true, qt::error_code_name(e.code()), e.what(), e.file() ? e.file() : "", e.line()};
  } catch (const JsFailure& f) {
    error_ = {true, f.code, f.message, "", 0};
  } catch (const std::bad_alloc&) {
    error_ = {true, "OUT_OF_MEMORY", "Out of memory: the operation needs more memory than is available. Close other programs or use a smaller model or batch.", "", 0};
  } catch (const std::exception& e) {
    error_ = {true, "INTERNAL", std::string("Internal engine error: ") + e.what(), "", 0};
  } catch (...) {
    error_ = {true, "INTERNAL", "Internal engine error (unknown exception)", "", 0};
  }
}

void PromiseWorker::OnProgress(const Event* data, size_t count) {
  if (data == nullptr || on_progress_.IsEmpty()) return;
  Napi::Env env = Env();
  for (size_t i = 0; i < count; i++) {
    if (has_callback_error_) return;  // the operation is being cancelled because a callback threw
    Napi::HandleScope scope(env);
    try {
      on_progress_.MakeCallback(env.Global(), {ProgressValue(env, data[i])});
    } catch (const Napi::Error& e) {
      callback_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
      has_callback_error_ = true;
      cancel_->store(true);
    }
  }
}

void PromiseWorker::OnOK() {
  Finished();
  lease_.Release();
  Napi::Env env = Env();
  if (has_callback_error_) {
    deferred_.Reject(callback_error_.Value());
    return;
  }
  if (error_.set) {
    deferred_.Reject(MakeError(env, error_).Value());
    return;
  }
  try {
    deferred_.Resolve(Result(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const JsFailure& f) {
    deferred_.Reject(MakeError(env, f.code, f.message).Value());
  } catch (const std::exception& e) {
    deferred_.Reject(MakeError(env, "INTERNAL", e.what()).Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  lease_.Release();
  deferred_.Reject(e.Value());
}

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace qta
