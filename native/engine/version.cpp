// Engine version string; bumped when the on-disk formats (checkpoints, training-set files) change.
#include "version.h"

namespace qt {
const char* engine_version() { return "0.1.0"; }
}  // namespace qt
