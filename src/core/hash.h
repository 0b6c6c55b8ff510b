// Deterministic hashing and pseudo-random numbers: the same input gives the same value on every
// machine, so seeds, fingerprints and synthetic files are reproducible.
#pragma once

#include <cstdint>
#include <string>

namespace reap {

// One splitmix64 output for the state `x` (the finaliser of Steele et al.).
inline uint64_t splitmix64_mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

inline constexpr uint64_t k_golden_gamma = 0x9E3779B97F4A7C15ull;

// A splitmix64 stream.
struct SplitMix64 {
    uint64_t state;
    uint64_t next() { return splitmix64_mix(state += k_golden_gamma); }
    double   uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

// A uniform value in [0, 1) keyed by (seed, a, b): the same triple, the same value.
inline double keyed_uniform(uint64_t seed, uint64_t a, uint64_t b) {
    const uint64_t z = splitmix64_mix(seed * k_golden_gamma + a * 0xBF58476D1CE4E5B9ull + b + 1);
    return double(z >> 11) / 9007199254740992.0;
}

// 64-bit FNV-1a, fed byte by byte.
struct Fnv1a {
    uint64_t h = 1469598103934665603ull;
    void     byte(uint8_t b) { h = (h ^ b) * 1099511628211ull; }
    void     bytes(const void * p, size_t n) {
            for (size_t i = 0; i < n; i++) {
                byte(static_cast<const uint8_t *>(p)[i]);
        }
    }
    void u32_le(uint32_t v) {
        for (int b = 0; b < 4; b++) {
            byte(uint8_t((v >> (8 * b)) & 0xff));
        }
    }
    void str(const std::string & s) { bytes(s.data(), s.size()); }
};

inline uint64_t fnv1a(const std::string & s) {
    Fnv1a f;
    f.str(s);
    return f.h;
}

}  // namespace reap
