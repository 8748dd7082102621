#pragma once
namespace qt {
const char* engine_version();
}
