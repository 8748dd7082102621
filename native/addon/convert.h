// JS <-> engine struct conversions. JS objects use camelCase names of the engine.h fields
// (hidden_size -> hiddenSize). Missing or undefined fields keep the engine.h defaults; a field of the wrong
// type is INVALID_ARGUMENT naming the field. Range checks with user-facing wording live in the TS facade
// (main/engine/validate.ts); the engine checks again.
#pragma once

#include "common.h"

namespace qta {

qt::LoadOptions LoadOptionsFrom(const Napi::Value& v);
qt::LoraConfig LoraConfigFrom(const Napi::Value& v, const char* what);
qt::TrainConfig TrainConfigFrom(const Napi::Value& v);
qt::SamplingConfig SamplingFrom(const Napi::Value& v, int vocab);
qt::PeftMeta PeftMetaFrom(const Napi::Value& v);
/** Token ids from an Int32Array or an array of integers; each must be in [0, vocab). */
std::vector<int32_t> IdsFrom(const Napi::Value& v, int vocab, const char* what);
std::string StringFrom(const Napi::Value& v, const char* what);
int64_t IntFrom(const Napi::Value& v, const char* what, int64_t min, int64_t max);

Napi::Object ToJs(Napi::Env env, const qt::DeviceInfo& d);
Napi::Object ToJs(Napi::Env env, const qt::ModelConfig& c);
Napi::Object ToJs(Napi::Env env, const qt::ModelInspection& m);
Napi::Object ToJs(Napi::Env env, const qt::DatasetInfo& d);
Napi::Object ToJs(Napi::Env env, const qt::MemoryReport& m);
Napi::Object ToJs(Napi::Env env, const qt::LoraConfig& c);
Napi::Object ToJs(Napi::Env env, const qt::StepMetrics& m);
Napi::Object ToJs(Napi::Env env, const qt::GenerateResult& r);
Napi::Float32Array ToJs(Napi::Env env, const std::vector<float>& v);

}  // namespace qta
