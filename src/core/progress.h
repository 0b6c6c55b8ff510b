// A progress line on stderr for long work: done/total, items/s, ETA. Redrawn in place on a
// terminal (at most 4 times a second), one line every 10 seconds otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace reap {

class Progress {
public:
    Progress(std::string what, uint64_t total_units, const char * unit, bool enabled = true);
    // `done` units of `total`; `extra` is appended (e.g. "1234 tokens").
    void update(uint64_t done, const std::string & extra = "", bool force = false);
    // Continues earlier work: `done` units count as done, but not as done by this run, so the
    // rate and the ETA come from this run's work alone.
    void resume_from(uint64_t done);
    // Draws the final state, unless the last line drawn already showed it.
    void   finish();
    double elapsed_s() const;

private:
    std::string                           what_;
    uint64_t                              total_;
    std::string                           unit_;
    bool                                  enabled_, tty_;
    std::chrono::steady_clock::time_point start_, last_;
    uint64_t                              done_    = 0;
    uint64_t                              resumed_ = 0;  // units done before this run
    std::string                           extra_;
    bool                                  drawn_      = false;
    uint64_t                              drawn_done_ = 0;  // what the last line showed
    std::string                           drawn_extra_;
};

std::string format_duration(double seconds);  // "1:02:03" / "2:03"

}  // namespace reap
