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

// A usage error: an option's value or a combination of options that no input could make
// right. The front end exits 2 for it, as for the command-line parser's own errors; every
// other Error (a bad file, a failed write) exits 1.
struct UsageError : Error {
    using Error::Error;
};

// printf-style formatting into a std::string.
std::string strfmt(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void fail(const char * fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fail_usage(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace reap
