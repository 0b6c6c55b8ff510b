// How much memory this process can still use: what decides whether a model fits before
// llama.cpp tries to load it.
#pragma once

#include <cstdint>
#include <string>

namespace reap {

struct AvailableMemory {
    uint64_t    bytes = 0;  // 0: unknown
    std::string source;     // "MemAvailable", "the cgroup's memory.max", "REAP_MEM_AVAILABLE"
};

// The smaller of /proc/meminfo's MemAvailable and what the cgroup (v2 memory.max, or v1
// memory.limit_in_bytes) leaves above its current usage. The environment's REAP_MEM_AVAILABLE
// (bytes) replaces both: how the tests stand in for a small machine.
AvailableMemory available_memory();

// Whether a model of `bytes` cannot stay in memory: more than available_memory() (when known).
bool exceeds_available_memory(uint64_t bytes);

}  // namespace reap
