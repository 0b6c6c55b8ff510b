// Lets a long run stop at a safe point on Ctrl-C or `kill`: while a StopSignalGuard lives,
// SIGINT and SIGTERM only set a flag that the run polls between steps (to write a checkpoint,
// or to throw Interrupted so that destructors remove its temporaries); the previous handlers
// come back when it is destroyed. One convention for every command: an interrupted run cleans
// up and the process exits 130 (128 + SIGINT), as a shell reports a process killed by Ctrl-C.
#pragma once

#include "core/error.h"

namespace reap {

class StopSignalGuard {
public:
    StopSignalGuard();
    ~StopSignalGuard();
    StopSignalGuard(const StopSignalGuard &)             = delete;
    StopSignalGuard & operator=(const StopSignalGuard &) = delete;

    // The signal received since construction, or 0.
    int received() const;

private:
    struct Saved;
    Saved * saved_;
};

// A run stopped by SIGINT or SIGTERM. The front end prints "reap: <what()>" and exits
// k_interrupted_exit_code.
struct Interrupted : Error {
    using Error::Error;
};
inline constexpr int k_interrupted_exit_code = 130;

// A safe point: throws Interrupted ("interrupted by SIGINT while <doing>") when a signal
// arrived while a StopSignalGuard lives; does nothing otherwise (and without a guard).
void stop_point(const char * doing);

}  // namespace reap
