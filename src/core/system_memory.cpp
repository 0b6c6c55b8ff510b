#include "core/system_memory.h"

#include "core/error.h"
#include "core/text.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace reap {

namespace {

// The first number in `path` ("max" or a missing file: 0).
uint64_t read_number(const std::string & path) {
    std::ifstream in(path);
    std::string   word;
    if (!(in >> word)) return 0;
    uint64_t v = 0;
    return parse_canonical_uint(word, UINT64_MAX, v) ? v : 0;
}

uint64_t mem_available() {
    std::ifstream in("/proc/meminfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("MemAvailable:", 0) != 0) continue;
        std::istringstream s(line.substr(13));
        uint64_t           kb = 0;
        if (s >> kb) return kb * 1024;
    }
    return 0;
}

// What the cgroup lets this process use beyond what it uses now; 0 without a limit.
uint64_t cgroup_headroom() {
    for (const auto & [limit, usage] :
         {std::pair<const char *, const char *>{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
          {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
        const uint64_t l = read_number(limit);
        // cgroup v1 reports "no limit" as a huge number near 2^63.
        if (l == 0 || l >= (uint64_t(1) << 62)) continue;
        const uint64_t u = read_number(usage);
        return l > u ? l - u : 1;
    }
    return 0;
}

}  // namespace

AvailableMemory available_memory() {
    if (const char * v = std::getenv("REAP_MEM_AVAILABLE")) {
        uint64_t n = 0;
        if (!parse_canonical_uint(v, UINT64_MAX, n)) fail("REAP_MEM_AVAILABLE=%s: not a number of bytes", v);
        return {n, "REAP_MEM_AVAILABLE"};
    }
    AvailableMemory m{mem_available(), "MemAvailable"};
    const uint64_t  cg = cgroup_headroom();
    if (cg != 0 && (m.bytes == 0 || cg < m.bytes)) m = {cg, "the cgroup's memory limit"};
    return m;
}

bool exceeds_available_memory(uint64_t bytes) {
    const AvailableMemory m = available_memory();
    return m.bytes != 0 && bytes > m.bytes;
}

}  // namespace reap
