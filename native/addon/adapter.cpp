// JS class Adapter (wraps shared_ptr<qt::Adapter>): its LoRA config, PEFT export, dispose. Created by
// model.createAdapter / model.loadAdapter or taken from a trainer (trainer.adapter: trained in place).
#include "convert.h"

namespace qta {

namespace {

using Progress = Napi::AsyncProgressQueueWorker<Event>::ExecutionProgress;

class SavePeftWorker : public PromiseWorker {
 public:
  SavePeftWorker(Napi::Env env, Lease lease, std::shared_ptr<AdapterHandle> a, std::string folder, qt::PeftMeta meta)
      : PromiseWorker(env, "qatuner.saveAdapter", std::move(lease), nullptr, Napi::Value()),
        a_(std::move(a)), folder_(std::move(folder)), meta_(std::move(meta)) {}

 protected:
  void Run(const Progress&) override { qt::save_peft_adapter(*a_->adapter, folder_, meta_); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  std::shared_ptr<AdapterHandle> a_;
  std::string folder_;
  qt::PeftMeta meta_;
};

class AdapterWrap : public Napi::ObjectWrap<AdapterWrap> {
 public:
  explicit AdapterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AdapterWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "Adapters are created by model.createAdapter(), model.loadAdapter() or trainer.adapter");
    }
    h_ = *info[0].As<Napi::External<std::shared_ptr<AdapterHandle>>>().Data();
  }

  std::shared_ptr<AdapterHandle> handle() const { return h_; }

  Napi::Value Config(const Napi::CallbackInfo& info) { return ToJs(info.Env(), h_->config); }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), h_->disposed); }
  Napi::Value GetFromTrainer(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), h_->from_trainer); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return SyncGuard(info.Env(), [&]() -> Napi::Value {
      DisposeAdapter(h_);
      return info.Env().Undefined();
    });
  }

  // save(folder, meta) -> Promise<void>   (PEFT directory, written atomically by the engine)
  Napi::Value Save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PromiseGuard(env, [&]() -> Napi::Value {
      std::string folder = StringFrom(info[0], "folder");
      if (folder.empty()) throw InvalidArg("folder must not be empty");
      qt::PeftMeta meta = PeftMetaFrom(info[1]);
      Lease lease;
      lease.Acquire({{h_, "adapter"}, {h_->model, "model"}});
      return (new SavePeftWorker(env, std::move(lease), h_, folder, meta))->Start();
    });
  }

 private:
  std::shared_ptr<AdapterHandle> h_;
};

}  // namespace

Napi::Function DefineAdapter(Napi::Env env) {
  return AdapterWrap::DefineClass(env, "Adapter",
                                  {AdapterWrap::InstanceMethod<&AdapterWrap::Config>("config"),
                                   AdapterWrap::InstanceMethod<&AdapterWrap::Save>("save"),
                                   AdapterWrap::InstanceMethod<&AdapterWrap::Dispose>("dispose"),
                                   AdapterWrap::InstanceAccessor<&AdapterWrap::GetDisposed>("disposed"),
                                   AdapterWrap::InstanceAccessor<&AdapterWrap::GetFromTrainer>("fromTrainer")});
}

Napi::Object NewAdapterObject(Napi::Env env, const std::shared_ptr<AdapterHandle>& h) {
  auto copy = h;
  return Data(env).adapter_ctor.New({Napi::External<std::shared_ptr<AdapterHandle>>::New(env, &copy)});
}

std::shared_ptr<AdapterHandle> AdapterFrom(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Data(env).adapter_ctor.Value())) {
    throw InvalidArg(std::string(what) + " must be an Adapter");
  }
  return AdapterWrap::Unwrap(v.As<Napi::Object>())->handle();
}

}  // namespace qta
