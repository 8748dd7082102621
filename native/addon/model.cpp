// JS class Model (wraps shared_ptr<qt::Model>) and its operations: load, forward logits, generation with
// streamed tokens, adapters and trainers. Every operation on a model (or on an adapter/trainer of it) holds
// the model's busy lease: one engine call per model at a time, a second one rejects with BUSY.
#include <algorithm>

#include "convert.h"

namespace qta {

namespace {

using Progress = Napi::AsyncProgressQueueWorker<Event>::ExecutionProgress;

void RegisterAdapter(const std::shared_ptr<ModelHandle>& m, const std::shared_ptr<AdapterHandle>& a) {
  auto& v = m->adapters;
  v.erase(std::remove_if(v.begin(), v.end(), [](const std::weak_ptr<AdapterHandle>& w) { return w.expired(); }), v.end());
  v.push_back(a);
}

void RegisterTrainer(const std::shared_ptr<ModelHandle>& m, const std::shared_ptr<TrainerHandle>& t) {
  auto& v = m->trainers;
  v.erase(std::remove_if(v.begin(), v.end(), [](const std::weak_ptr<TrainerHandle>& w) { return w.expired(); }), v.end());
  v.push_back(t);
}

// ---- workers -------------------------------------------------------------------------------------------

class LoadModelWorker : public PromiseWorker {
 public:
  LoadModelWorker(Napi::Env env, qt::LoadOptions options, CancelFlag cancel, Napi::Value on_progress)
      : PromiseWorker(env, "qatuner.loadModel", Lease(), std::move(cancel), on_progress), options_(std::move(options)) {}

 protected:
  void Run(const Progress& progress) override {
    options_.cancel = cancel_.get();
    options_.on_progress = [&progress](double fraction, const std::string& stage) {
      Event e;
      e.kind = Event::Load;
      e.fraction = fraction;
      e.stage = stage;
      progress.Send(&e, 1);
    };
    model_ = qt::load_model(options_);
    options_.on_progress = nullptr;
    config_ = qt::model_config(*model_);
    device_ = qt::model_device(*model_);
  }

  Napi::Value ProgressValue(Napi::Env env, const Event& e) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("fraction", Napi::Number::New(env, e.fraction));
    o.Set("stage", Napi::String::New(env, e.stage));
    return o;
  }

  Napi::Value Result(Napi::Env env) override {
    auto h = std::make_shared<ModelHandle>();
    h->model = std::move(model_);
    h->config = config_;
    h->device = device_;
    return NewModelObject(env, h);
  }

 private:
  qt::LoadOptions options_;
  std::shared_ptr<qt::Model> model_;
  qt::ModelConfig config_;
  std::string device_;
};

class ForwardLogitsWorker : public PromiseWorker {
 public:
  ForwardLogitsWorker(Napi::Env env, Lease lease, std::shared_ptr<ModelHandle> m, std::shared_ptr<AdapterHandle> a, std::vector<int32_t> ids)
      : PromiseWorker(env, "qatuner.forwardLogits", std::move(lease), nullptr, Napi::Value()), m_(std::move(m)), a_(std::move(a)), ids_(std::move(ids)) {}

 protected:
  void Run(const Progress&) override { logits_ = qt::forward_logits(m_->model, a_ ? a_->adapter.get() : nullptr, ids_); }
  Napi::Value Result(Napi::Env env) override { return ToJs(env, logits_); }

 private:
  std::shared_ptr<ModelHandle> m_;
  std::shared_ptr<AdapterHandle> a_;
  std::vector<int32_t> ids_;
  std::vector<float> logits_;
};

class GenerateWorker : public PromiseWorker {
 public:
  GenerateWorker(Napi::Env env, Lease lease, std::shared_ptr<ModelHandle> m, std::shared_ptr<AdapterHandle> a, std::vector<int32_t> prompt,
                 qt::SamplingConfig sampling, Napi::Value on_token, CancelFlag cancel)
      : PromiseWorker(env, "qatuner.generate", std::move(lease), std::move(cancel), on_token),
        m_(std::move(m)), a_(std::move(a)), prompt_(std::move(prompt)), sampling_(std::move(sampling)), stream_(on_token.IsFunction()) {}

 protected:
  void Run(const Progress& progress) override {
    std::function<void(int32_t)> on_token;
    if (stream_) {
      on_token = [&progress](int32_t id) {
        Event e;
        e.kind = Event::Token;
        e.token = id;
        progress.Send(&e, 1);
      };
    }
    result_ = qt::generate(m_->model, a_ ? a_->adapter.get() : nullptr, prompt_, sampling_, on_token, cancel_.get());
  }
  Napi::Value ProgressValue(Napi::Env env, const Event& e) override { return Napi::Number::New(env, e.token); }
  Napi::Value Result(Napi::Env env) override { return ToJs(env, result_); }

 private:
  std::shared_ptr<ModelHandle> m_;
  std::shared_ptr<AdapterHandle> a_;
  std::vector<int32_t> prompt_;
  qt::SamplingConfig sampling_;
  bool stream_;
  qt::GenerateResult result_;
};

class WeightWorker : public PromiseWorker {
 public:
  WeightWorker(Napi::Env env, Lease lease, std::shared_ptr<ModelHandle> m, std::string name)
      : PromiseWorker(env, "qatuner.weightFp32", std::move(lease), nullptr, Napi::Value()), m_(std::move(m)), name_(std::move(name)) {}

 protected:
  void Run(const Progress&) override { data_ = qt::model_weight_fp32(*m_->model, name_); }
  Napi::Value Result(Napi::Env env) override { return ToJs(env, data_); }

 private:
  std::shared_ptr<ModelHandle> m_;
  std::string name_;
  std::vector<float> data_;
};

/** create_adapter or load_peft_adapter (folder non-empty). */
class AdapterWorker : public PromiseWorker {
 public:
  AdapterWorker(Napi::Env env, Lease lease, std::shared_ptr<ModelHandle> m, qt::LoraConfig config, std::string folder)
      : PromiseWorker(env, folder.empty() ? "qatuner.createAdapter" : "qatuner.loadAdapter", std::move(lease), nullptr, Napi::Value()),
        m_(std::move(m)), config_(std::move(config)), folder_(std::move(folder)) {}

 protected:
  void Run(const Progress&) override {
    adapter_ = folder_.empty() ? qt::create_adapter(m_->model, config_) : qt::load_peft_adapter(m_->model, folder_);
    config_ = qt::adapter_config(*adapter_);
  }
  Napi::Value Result(Napi::Env env) override {
    auto h = std::make_shared<AdapterHandle>();
    h->adapter = std::move(adapter_);
    h->model = m_;
    h->config = config_;
    RegisterAdapter(m_, h);
    return NewAdapterObject(env, h);
  }

 private:
  std::shared_ptr<ModelHandle> m_;
  qt::LoraConfig config_;
  std::string folder_;
  std::shared_ptr<qt::Adapter> adapter_;
};

class CreateTrainerWorker : public PromiseWorker {
 public:
  CreateTrainerWorker(Napi::Env env, Lease lease, std::shared_ptr<ModelHandle> m, qt::TrainConfig config, std::string path)
      : PromiseWorker(env, "qatuner.createTrainer", std::move(lease), nullptr, Napi::Value()),
        m_(std::move(m)), config_(std::move(config)), path_(std::move(path)) {}

 protected:
  void Run(const Progress&) override {
    trainer_ = qt::create_trainer(m_->model, config_, path_);
    adapter_ = qt::trainer_adapter(*trainer_);
    adapter_config_ = qt::adapter_config(*adapter_);
    steps_per_epoch_ = qt::trainer_steps_per_epoch(*trainer_);
    step_count_ = qt::trainer_step_count(*trainer_);
  }
  Napi::Value Result(Napi::Env env) override {
    auto a = std::make_shared<AdapterHandle>();
    a->adapter = std::move(adapter_);
    a->model = m_;
    a->config = adapter_config_;
    a->from_trainer = true;
    auto t = std::make_shared<TrainerHandle>();
    t->trainer = std::move(trainer_);
    t->model = m_;
    t->adapter = a;
    t->steps_per_epoch = steps_per_epoch_;
    t->step_count = step_count_;
    RegisterAdapter(m_, a);
    RegisterTrainer(m_, t);
    return NewTrainerObject(env, t);
  }

 private:
  std::shared_ptr<ModelHandle> m_;
  qt::TrainConfig config_;
  std::string path_;
  TrainerPtr trainer_;
  std::shared_ptr<qt::Adapter> adapter_;
  qt::LoraConfig adapter_config_;
  int64_t steps_per_epoch_ = 0;
  int64_t step_count_ = 0;
};

// ---- the JS class ----------------------------------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Models are created by loadModel()");
    h_ = *info[0].As<Napi::External<std::shared_ptr<ModelHandle>>>().Data();
  }

  Napi::Value Config(const Napi::CallbackInfo& info) { return ToJs(info.Env(), h_->config); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), h_->device); }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), h_->disposed); }
  Napi::Value GetBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), h_->busy); }

  // Allowed while an operation runs (engine: model_memory only reads counters).
  Napi::Value Memory(const Napi::CallbackInfo& info) {
    return SyncGuard(info.Env(), [&]() -> Napi::Value {
      if (h_->disposed) throw JsFailure{"DISPOSED", "The model was disposed and can no longer be used."};
      return ToJs(info.Env(), qt::model_memory(*h_->model));
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return SyncGuard(info.Env(), [&]() -> Napi::Value {
      DisposeModel(h_);
      return info.Env().Undefined();
    });
  }

  // weightFp32(name) -> Promise<Float32Array>
  Napi::Value WeightFp32(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::string name = StringFrom(info[0], "name");
      Lease lease;
      lease.Acquire({{h_, "model"}});
      return (new WeightWorker(env, std::move(lease), h_, name))->Start();
    });
  }

  // forwardLogits(ids, adapter?) -> Promise<Float32Array [ids.length * vocab]>
  Napi::Value ForwardLogits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::vector<int32_t> ids = IdsFrom(info[0], h_->config.vocab_size, "ids");
      if (ids.empty()) throw InvalidArg("ids must hold at least one token id");
      auto a = OptionalAdapter(env, info[1]);
      Lease lease;
      lease.Acquire({{h_, "model"}, {a, "adapter"}});
      return (new ForwardLogitsWorker(env, std::move(lease), h_, a, std::move(ids)))->Start();
    });
  }

  // generate(prompt, sampling, adapter?, onToken?, cancel?) -> Promise<GenerateResult>
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::vector<int32_t> prompt = IdsFrom(info[0], h_->config.vocab_size, "prompt");
      if (prompt.empty()) throw InvalidArg("prompt must hold at least one token id");
      qt::SamplingConfig sampling = SamplingFrom(info[1], h_->config.vocab_size);
      auto a = OptionalAdapter(env, info[2]);
      Napi::Value on_token = info[3];
      if (!on_token.IsUndefined() && !on_token.IsNull() && !on_token.IsFunction()) throw InvalidArg("onToken must be a function");
      CancelFlag cancel = CancelFlagFrom(env, info[4]);
      Lease lease;
      lease.Acquire({{h_, "model"}, {a, "adapter"}});
      return (new GenerateWorker(env, std::move(lease), h_, a, std::move(prompt), std::move(sampling), on_token, cancel))->Start();
    });
  }

  // createAdapter(lora) -> Promise<Adapter>
  Napi::Value CreateAdapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      qt::LoraConfig config = LoraConfigFrom(info[0], "lora");
      Lease lease;
      lease.Acquire({{h_, "model"}});
      return (new AdapterWorker(env, std::move(lease), h_, std::move(config), ""))->Start();
    });
  }

  // loadAdapter(folder) -> Promise<Adapter>   (PEFT directory)
  Napi::Value LoadAdapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::string folder = StringFrom(info[0], "folder");
      if (folder.empty()) throw InvalidArg("folder must not be empty");
      Lease lease;
      lease.Acquire({{h_, "model"}});
      return (new AdapterWorker(env, std::move(lease), h_, qt::LoraConfig(), folder))->Start();
    });
  }

  // createTrainer(config, trainSetPath) -> Promise<Trainer>
  Napi::Value CreateTrainer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      qt::TrainConfig config = TrainConfigFrom(info[0]);
      std::string path = StringFrom(info[1], "trainSetPath");
      Lease lease;
      lease.Acquire({{h_, "model"}});
      return (new CreateTrainerWorker(env, std::move(lease), h_, std::move(config), path))->Start();
    });
  }

 private:
  std::shared_ptr<AdapterHandle> OptionalAdapter(Napi::Env env, const Napi::Value& v) {
    if (v.IsUndefined() || v.IsNull()) return nullptr;
    auto a = AdapterFrom(env, v, "adapter");
    if (a->model != h_) throw InvalidArg("The adapter belongs to a different model");
    return a;
  }

  std::shared_ptr<ModelHandle> h_;
};

}  // namespace

Napi::Function DefineModel(Napi::Env env) {
  return ModelWrap::DefineClass(env, "Model",
                                {ModelWrap::InstanceMethod<&ModelWrap::Config>("config"),
                                 ModelWrap::InstanceMethod<&ModelWrap::Device>("device"),
                                 ModelWrap::InstanceMethod<&ModelWrap::Memory>("memory"),
                                 ModelWrap::InstanceMethod<&ModelWrap::WeightFp32>("weightFp32"),
                                 ModelWrap::InstanceMethod<&ModelWrap::ForwardLogits>("forwardLogits"),
                                 ModelWrap::InstanceMethod<&ModelWrap::Generate>("generate"),
                                 ModelWrap::InstanceMethod<&ModelWrap::CreateAdapter>("createAdapter"),
                                 ModelWrap::InstanceMethod<&ModelWrap::LoadAdapter>("loadAdapter"),
                                 ModelWrap::InstanceMethod<&ModelWrap::CreateTrainer>("createTrainer"),
                                 ModelWrap::InstanceMethod<&ModelWrap::Dispose>("dispose"),
                                 ModelWrap::InstanceAccessor<&ModelWrap::GetDisposed>("disposed"),
                                 ModelWrap::InstanceAccessor<&ModelWrap::GetBusy>("busy")});
}

Napi::Object NewModelObject(Napi::Env env, const std::shared_ptr<ModelHandle>& h) {
  auto copy = h;
  return Data(env).model_ctor.New({Napi::External<std::shared_ptr<ModelHandle>>::New(env, &copy)});
}

// loadModel(options, onProgress?, cancel?) -> Promise<Model>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return PromiseGuard(env, [&]() -> Napi::Value {
    qt::LoadOptions options = LoadOptionsFrom(info[0]);
    Napi::Value on_progress = info[1];
    if (!on_progress.IsUndefined() && !on_progress.IsNull() && !on_progress.IsFunction()) throw InvalidArg("onProgress must be a function");
    CancelFlag cancel = CancelFlagFrom(env, info[2]);
    return (new LoadModelWorker(env, std::move(options), cancel, on_progress))->Start();
  });
}

}  // namespace qta
