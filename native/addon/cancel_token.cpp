// CancelToken: an atomic flag shared between JS and one running engine operation. `new CancelToken()`,
// pass it to an operation, call cancel() from JS at any time; the engine checks it between steps (and between
// layers where cheap) and stops with CANCELLED (generation returns its tokens so far instead).
#include "common.h"

namespace qta {

class CancelTokenWrap : public Napi::ObjectWrap<CancelTokenWrap> {
 public:
  explicit CancelTokenWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<CancelTokenWrap>(info), flag_(std::make_shared<qt::CancelToken>(false)) {}

  CancelFlag flag() const { return flag_; }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    flag_->store(true);
    return info.Env().Undefined();
  }

  Napi::Value GetCancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }

 private:
  CancelFlag flag_;
};

Napi::Function DefineCancelToken(Napi::Env env) {
  return CancelTokenWrap::DefineClass(env, "CancelToken",
                                      {CancelTokenWrap::InstanceMethod<&CancelTokenWrap::Cancel>("cancel"),
                                       CancelTokenWrap::InstanceAccessor<&CancelTokenWrap::GetCancelled>("cancelled")});
}

CancelFlag CancelFlagFrom(Napi::Env env, const Napi::Value& v) {
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return std::make_shared<qt::CancelToken>(false);
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Data(env).cancel_ctor.Value())) {
    throw InvalidArg("cancel must be a CancelToken (or undefined)");
  }
  return CancelTokenWrap::Unwrap(v.As<Napi::Object>())->flag();
}

}  // namespace qta
