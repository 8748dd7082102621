// Engine identity: version string (bumped when checkpoint or training-set formats change), compiled
// backends, and the stable names of error codes shared with JS.
#include "engine.h"

namespace qt {

const char* engine_version() { return "0.1.0"; }

std::vector<std::string> compiled_backends() {
#ifdef QT_HAVE_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::NotFound: return "NOT_FOUND";
    case ErrorCode::BadFile: return "BAD_FILE";
    case ErrorCode::Unsupported: return "UNSUPPORTED";
    case ErrorCode::ShapeMismatch: return "SHAPE_MISMATCH";
    case ErrorCode::OutOfMemory: return "OUT_OF_MEMORY";
    case ErrorCode::Cancelled: return "CANCELLED";
    case ErrorCode::Io: return "IO";
    case ErrorCode::Device: return "DEVICE";
    case ErrorCode::Internal: return "INTERNAL";
  }
  return "INTERNAL";
}

}  // namespace qt
