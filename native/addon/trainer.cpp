// JS class Trainer (wraps unique_ptr<qt::Trainer>): step(k) with per-step metrics, evaluate, checkpoints,
// the adapter being trained, dispose. step(k) checks the cancel flag before each step (the engine checks it
// inside a step too); cancelling resolves with the steps completed so far and cancelled = true.
#include "convert.h"

namespace qta {

namespace {

using Progress = Napi::AsyncProgressQueueWorker<Event>::ExecutionProgress;

class StepWorker : public PromiseWorker {
 public:
  StepWorker(Napi::Env env, Lease lease, std::shared_ptr<TrainerHandle> t, int k, Napi::Value on_metrics, CancelFlag cancel)
      : PromiseWorker(env, "qatuner.step", std::move(lease), std::move(cancel), on_metrics), t_(std::move(t)), k_(k) {}

 protected:
  void Run(const Progress& progress) override {
    for (int i = 0; i < k_; i++) {
      if (cancel_->load()) {
        cancelled_ = true;
        break;
      }
      Event e;
      e.kind = Event::Metrics;
      try {
        e.metrics = qt::trainer_step(*t_->trainer, cancel_.get());
      } catch (const qt::Error& err) {
        if (err.code() != qt::ErrorCode::Cancelled) throw;
        cancelled_ = true;
        break;
      }
      done_.push_back(e.metrics);
      progress.Send(&e, 1);
    }
  }

  Napi::Value ProgressValue(Napi::Env env, const Event& e) override { return ToJs(env, e.metrics); }

  // Steps done count even when the operation then fails or a callback threw.
  void Finished() override {
    if (!done_.empty()) t_->step_count = done_.back().step;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array metrics = Napi::Array::New(env, done_.size());
    for (size_t i = 0; i < done_.size(); i++) metrics.Set(static_cast<uint32_t>(i), ToJs(env, done_[i]));
    Napi::Object o = Napi::Object::New(env);
    o.Set("metrics", metrics);
    o.Set("cancelled", Napi::Boolean::New(env, cancelled_));
    return o;
  }

 private:
  std::shared_ptr<TrainerHandle> t_;
  int k_;
  bool cancelled_ = false;
  std::vector<qt::StepMetrics> done_;
};

class EvaluateWorker : public PromiseWorker {
 public:
  EvaluateWorker(Napi::Env env, Lease lease, std::shared_ptr<TrainerHandle> t, std::string path, CancelFlag cancel)
      : PromiseWorker(env, "qatuner.evaluate", std::move(lease), std::move(cancel), Napi::Value()), t_(std::move(t)), path_(std::move(path)) {}

 protected:
  void Run(const Progress&) override { loss_ = qt::trainer_evaluate(*t_->trainer, path_, cancel_.get()); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, loss_); }

 private:
  std::shared_ptr<TrainerHandle> t_;
  std::string path_;
  double loss_ = 0;
};

class CheckpointWorker : public PromiseWorker {
 public:
  CheckpointWorker(Napi::Env env, Lease lease, std::shared_ptr<TrainerHandle> t, std::string folder, bool load)
      : PromiseWorker(env, load ? "qatuner.loadCheckpoint" : "qatuner.saveCheckpoint", std::move(lease), nullptr, Napi::Value()),
        t_(std::move(t)), folder_(std::move(folder)), load_(load) {}

 protected:
  void Run(const Progress&) override {
    if (!load_) {
      qt::trainer_save_checkpoint(*t_->trainer, folder_);
      return;
    }
    qt::trainer_load_checkpoint(*t_->trainer, folder_);
    step_count_ = qt::trainer_step_count(*t_->trainer);
    adapter_ = qt::trainer_adapter(*t_->trainer);
  }
  Napi::Value Result(Napi::Env env) override {
    if (load_) {
      t_->step_count = step_count_;
      // Keep the adapter handle on whatever adapter object the trainer now trains (normally the same one).
      if (t_->adapter && !t_->adapter->disposed) t_->adapter->adapter = adapter_;
    }
    return env.Undefined();
  }

 private:
  std::shared_ptr<TrainerHandle> t_;
  std::string folder_;
  bool load_;
  int64_t step_count_ = 0;
  std::shared_ptr<qt::Adapter> adapter_;
};

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  explicit TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Trainers are created by model.createTrainer()");
    h_ = *info[0].As<Napi::External<std::shared_ptr<TrainerHandle>>>().Data();
  }

  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), h_->disposed); }
  Napi::Value GetBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), h_->busy); }
  Napi::Value StepsPerEpoch(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(h_->steps_per_epoch)); }
  Napi::Value StepCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(h_->step_count)); }

  // The adapter being trained: the same JS object every time; it outlives the trainer once taken.
  Napi::Value Adapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return SyncGuard(env, [&]() -> Napi::Value {
      if (!adapter_obj_.IsEmpty()) return adapter_obj_.Value();
      if (h_->disposed || !h_->adapter) throw JsFailure{"DISPOSED", "The trainer was disposed and can no longer be used."};
      h_->adapter_exposed = true;
      Napi::Object o = NewAdapterObject(env, h_->adapter);
      adapter_obj_ = Napi::Persistent(o);
      return o;
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return SyncGuard(info.Env(), [&]() -> Napi::Value {
      DisposeTrainer(h_);
      return info.Env().Undefined();
    });
  }

  // step(k, onMetrics?, cancel?) -> Promise<{ metrics: StepMetrics[], cancelled: boolean }>
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      int k = static_cast<int>(IntFrom(info[0], "k", 1, 1000000));
      Napi::Value on_metrics = info[1];
      if (!on_metrics.IsUndefined() && !on_metrics.IsNull() && !on_metrics.IsFunction()) throw InvalidArg("onMetrics must be a function");
      CancelFlag cancel = CancelFlagFrom(env, info[2]);
      Lease lease;
      lease.Acquire({{h_, "trainer"}, {h_->model, "model"}});
      return (new StepWorker(env, std::move(lease), h_, k, on_metrics, cancel))->Start();
    });
  }

  // evaluate(setPath, cancel?) -> Promise<number>
  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::string path = StringFrom(info[0], "setPath");
      CancelFlag cancel = CancelFlagFrom(env, info[1]);
      Lease lease;
      lease.Acquire({{h_, "trainer"}, {h_->model, "model"}});
      return (new EvaluateWorker(env, std::move(lease), h_, path, cancel))->Start();
    });
  }

  Napi::Value SaveCheckpoint(const Napi::CallbackInfo& info) { return Checkpoint(info, false); }
  Napi::Value LoadCheckpoint(const Napi::CallbackInfo& info) { return Checkpoint(info, true); }

 private:
  Napi::Value Checkpoint(const Napi::CallbackInfo& info, bool load) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::string folder = StringFrom(info[0], "folder");
      if (folder.empty()) throw InvalidArg("folder must not be empty");
      Lease lease;
      lease.Acquire({{h_, "trainer"}, {h_->model, "model"}});
      return (new CheckpointWorker(env, std::move(lease), h_, folder, load))->Start();
    });
  }

  std::shared_ptr<TrainerHandle> h_;
  Napi::ObjectReference adapter_obj_;
};

}  // namespace

Napi::Function DefineTrainer(Napi::Env env) {
  return TrainerWrap::DefineClass(env, "Trainer",
                                  {TrainerWrap::InstanceMethod<&TrainerWrap::Adapter>("adapter"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::StepsPerEpoch>("stepsPerEpoch"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::StepCount>("stepCount"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::Step>("step"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::Evaluate>("evaluate"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::SaveCheckpoint>("saveCheckpoint"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::LoadCheckpoint>("loadCheckpoint"),
                                   TrainerWrap::InstanceMethod<&TrainerWrap::Dispose>("dispose"),
                                   TrainerWrap::InstanceAccessor<&TrainerWrap::GetDisposed>("disposed"),
                                   TrainerWrap::InstanceAccessor<&TrainerWrap::GetBusy>("busy")});
}

Napi::Object NewTrainerObject(Napi::Env env, const std::shared_ptr<TrainerHandle>& h) {
  auto copy = h;
  return Data(env).trainer_ctor.New({Napi::External<std::shared_ptr<TrainerHandle>>::New(env, &copy)});
}

}  // namespace qta
