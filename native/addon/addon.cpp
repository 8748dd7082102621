// N-API entry point: registers the engine's JS surface. The addon does no math.
#include <napi.h>
#include "version.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::String::New(env, qt::engine_version()));
  return exports;
}

NODE_API_MODULE(qatuner, Init)
