// N-API entry point: registers the engine's JS surface. The addon does no math.
#include <napi.h>
#include "engine.h"

static Napi::Value Backends(const Napi::CallbackInfo& info) {
  auto names = qt::compiled_backends();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); i++) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::String::New(env, qt::engine_version()));
  exports.Set("backends", Napi::Function::New(env, Backends, "backends"));
  return exports;
}

NODE_API_MODULE(qatuner, Init)
