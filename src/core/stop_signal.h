// Lets a long run stop at a safe point on Ctrl-C or `kill`: while a StopSignalGuard lives,
// SIGINT and SIGTERM only set a flag that the run polls between steps (to write a checkpoint
// and return); the previous handlers come back when it is destroyed.
#pragma once

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

}  // namespace reap
