// Shared by the libFuzzer harnesses: the readers under test take file paths (as the commands
// do), so each input is written to a private file in /dev/shm (or $TMPDIR) first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace reap::fuzz {

inline std::string scratch_dir() {
    static const std::string dir = [] {
        const char * base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        return std::string(base) + "/reap-fuzz-" + std::to_string(getpid());
    }();
    return dir;
}

// Writes `data` to <scratch>/<name> and returns the path.
inline std::string write_input(const std::string & name, const uint8_t * data, size_t size) {
    static bool made = false;
    if (!made) {
        std::string cmd = "mkdir -p '" + scratch_dir() + "'";
        if (std::system(cmd.c_str()) != 0) std::abort();
        made = true;
    }
    const std::string path = scratch_dir() + "/" + name;
    FILE *            f    = std::fopen(path.c_str(), "wb");
    if (f == nullptr) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path;
}

}  // namespace reap::fuzz
