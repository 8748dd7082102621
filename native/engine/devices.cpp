// Devices: the CPU entry of list_devices() (thread count, host RAM from /proc/meminfo, sysconf or the OS
// API), then whatever the CUDA backend reports through cuda_list_devices() (backend.h).
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "backend.h"
#include "engine.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace qt {

void host_memory_info(uint64_t* free_bytes, uint64_t* total_bytes) {
  *free_bytes = 0;
  *total_bytes = 0;
#ifdef _WIN32
  MEMORYSTATUSEX st;
  st.dwLength = sizeof st;
  if (GlobalMemoryStatusEx(&st)) {
    *total_bytes = st.ullTotalPhys;
    *free_bytes = st.ullAvailPhys;
  }
#else
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {  // Linux: MemAvailable is what can be allocated
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total_bytes = kb * 1024ull;
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *free_bytes = kb * 1024ull;
    }
    std::fclose(f);
  }
  const long page = sysconf(_SC_PAGESIZE);
  if (*total_bytes == 0 && page > 0) {
    long pages = sysconf(_SC_PHYS_PAGES);
    if (pages > 0) *total_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  }
#ifdef _SC_AVPHYS_PAGES
  if (*free_bytes == 0 && page > 0) {
    long pages = sysconf(_SC_AVPHYS_PAGES);
    if (pages > 0) *free_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  }
#endif
#endif
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  DeviceInfo cpu;
  cpu.backend = "cpu";
  cpu.index = 0;
  unsigned threads = std::thread::hardware_concurrency();
  cpu.name = "CPU (" + std::to_string(threads ? threads : 1) + " threads)";
  host_memory_info(&cpu.free_bytes, &cpu.total_bytes);
  cpu.bf16 = false;  // the CPU computes in fp32
  out.push_back(cpu);
  cuda_list_devices(out);  // CUDA backend hook (no-op in CPU-only builds)
  return out;
}

}  // namespace qt
