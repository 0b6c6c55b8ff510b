#include "core/progress.h"

#include "core/error.h"

#include <unistd.h>
#include <cstdio>

namespace reap {

std::string format_duration(double s) {
    if (!(s >= 0) || s > 1e7) {
        return "?";
    }
    const long t = long(s + 0.5);
    return t >= 3600 ? strfmt("%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60) : strfmt("%ld:%02ld", t / 60, t % 60);
}

Progress::Progress(std::string what, uint64_t total, const char * unit, bool enabled)
    : what_(std::move(what)),
      total_(total),
      unit_(unit),
      enabled_(enabled),
      tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double Progress::elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(uint64_t done, const std::string & extra, bool force) {
    done_  = done;
    extra_ = extra;
    if (!enabled_) {
        return;
    }
    const auto   now   = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.25 : 10.0)) {
        return;
    }
    last_                  = now;
    const double      el   = elapsed_s();
    const double      rate = el > 0 && done > resumed_ ? double(done - resumed_) / el : 0.0;
    const double      eta  = rate > 0 && total_ >= done ? double(total_ - done) / rate : -1;
    const std::string line =
        strfmt("%s: %llu/%llu %s (%.0f%%)%s%s, %s elapsed, ETA %s", what_.c_str(), (unsigned long long) done,
               (unsigned long long) total_, unit_.c_str(), total_ ? 100.0 * double(done) / double(total_) : 100.0,
               extra_.empty() ? "" : ", ", extra_.c_str(), format_duration(el).c_str(), format_duration(eta).c_str());
    std::fprintf(stderr, tty_ ? "\r\033[K%s" : "%s\n", line.c_str());
    drawn_       = true;
    drawn_done_  = done;
    drawn_extra_ = extra_;
}

void Progress::resume_from(uint64_t done) {
    resumed_ = done;
    done_    = done;
}

void Progress::finish() {
    if (enabled_) {
        if (!drawn_ || drawn_done_ != done_ || drawn_extra_ != extra_) {
            update(done_, extra_, true);
        }
        if (tty_ && drawn_) {
            std::fputc('\n', stderr);
        }
    }
}

}  // namespace reap
