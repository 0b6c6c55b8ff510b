// Errors: one exception type whose message is the one-line text the user sees.
#pragma once

#include <stdexcept>
#include <string>

namespace reap {

// Thrown for any user-facing failure (bad file, bad flag, I/O error). The front end prints
// "reap: error: <what()>" and exits non-zero; library code never calls exit().
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// printf-style formatting into a std::string.
std::string strfmt(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void fail(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace reap
