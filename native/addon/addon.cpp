// N-API entry point: registers the engine's JS surface. The addon does no math: each function converts its
// arguments, runs one engine call (long ones on a worker thread, returning a Promise) and converts the result.
//
//   version: string                        backends(): string[]
//   devices(): Promise<DeviceInfo[]>       inspectModel(folder): Promise<ModelInspection>
//   inspectDataset(path): Promise<DatasetInfo>
//   loadModel(options, onProgress?, cancel?): Promise<Model>
//   CancelToken, Model, Adapter, Trainer (classes; only CancelToken is constructible from JS)
// The TS facade (main/engine/) is the documented API; errors reject with .code (engine codes, BUSY, DISPOSED).
#include "convert.h"

namespace qta {

namespace {

using Progress = Napi::AsyncProgressQueueWorker<Event>::ExecutionProgress;

class DevicesWorker : public PromiseWorker {
 public:
  explicit DevicesWorker(Napi::Env env) : PromiseWorker(env, "qatuner.devices", Lease(), nullptr, Napi::Value()) {}

 protected:
  void Run(const Progress&) override { devices_ = qt::list_devices(); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, devices_.size());
    for (size_t i = 0; i < devices_.size(); i++) out.Set(static_cast<uint32_t>(i), ToJs(env, devices_[i]));
    return out;
  }

 private:
  std::vector<qt::DeviceInfo> devices_;
};

class InspectModelWorker : public PromiseWorker {
 public:
  InspectModelWorker(Napi::Env env, std::string folder)
      : PromiseWorker(env, "qatuner.inspectModel", Lease(), nullptr, Napi::Value()), folder_(std::move(folder)) {}

 protected:
  void Run(const Progress&) override { result_ = qt::inspect_model(folder_); }
  Napi::Value Result(Napi::Env env) override { return ToJs(env, result_); }

 private:
  std::string folder_;
  qt::ModelInspection result_;
};

class InspectDatasetWorker : public PromiseWorker {
 public:
  InspectDatasetWorker(Napi::Env env, std::string path)
      : PromiseWorker(env, "qatuner.inspectDataset", Lease(), nullptr, Napi::Value()), path_(std::move(path)) {}

 protected:
  void Run(const Progress&) override { result_ = qt::inspect_dataset(path_); }
  Napi::Value Result(Napi::Env env) override { return ToJs(env, result_); }

 private:
  std::string path_;
  qt::DatasetInfo result_;
};

Napi::Value Backends(const Napi::CallbackInfo& info) {
  auto names = qt::compiled_backends();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); i++) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  return PromiseGuard(info.Env(), [&]() -> Napi::Value { return (new DevicesWorker(info.Env()))->Start(); });
}

Napi::Value InspectModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return PromiseGuard(env, [&]() -> Napi::Value { return (new InspectModelWorker(env, StringFrom(info[0], "folder")))->Start(); });
}

Napi::Value InspectDataset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return PromiseGuard(env, [&]() -> Napi::Value { return (new InspectDatasetWorker(env, StringFrom(info[0], "path")))->Start(); });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by N-API when the environment ends
  Napi::Function model = DefineModel(env);
  Napi::Function adapter = DefineAdapter(env);
  Napi::Function trainer = DefineTrainer(env);
  Napi::Function cancel = DefineCancelToken(env);
  data->model_ctor = Napi::Persistent(model);
  data->adapter_ctor = Napi::Persistent(adapter);
  data->trainer_ctor = Napi::Persistent(trainer);
  data->cancel_ctor = Napi::Persistent(cancel);

  exports.Set("version", Napi::String::New(env, qt::engine_version()));
  exports.Set("backends", Napi::Function::New(env, Backends, "backends"));
  exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
  exports.Set("inspectModel", Napi::Function::New(env, InspectModel, "inspectModel"));
  exports.Set("inspectDataset", Napi::Function::New(env, InspectDataset, "inspectDataset"));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("CancelToken", cancel);
  exports.Set("Model", model);
  exports.Set("Adapter", adapter);
  exports.Set("Trainer", trainer);
  return exports;
}

}  // namespace

}  // namespace qta

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return qta::Init(env, exports); }

NODE_API_MODULE(qatuner, InitModule)
