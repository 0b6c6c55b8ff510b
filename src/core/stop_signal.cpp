#include "core/stop_signal.h"

#include <atomic>
#include <csignal>

namespace reap {

namespace {

std::atomic<int> g_stop_signal{0};
std::atomic<int> g_guards{0};  // guards alive: only then does a received signal count

extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

struct StopSignalGuard::Saved {
    struct sigaction old_int {
    }, old_term{};
};

StopSignalGuard::StopSignalGuard() : saved_(new Saved) {
    if (g_guards++ == 0) g_stop_signal = 0;  // a nested guard keeps a signal the outer one received
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &saved_->old_int);
    sigaction(SIGTERM, &sa, &saved_->old_term);
}

StopSignalGuard::~StopSignalGuard() {
    sigaction(SIGINT, &saved_->old_int, nullptr);
    sigaction(SIGTERM, &saved_->old_term, nullptr);
    g_guards--;
    delete saved_;
}

int StopSignalGuard::received() const { return g_stop_signal; }

void stop_point(const char * doing) {
    const int sig = g_stop_signal;
    if (g_guards > 0 && sig != 0) {
        throw Interrupted(strfmt("interrupted by %s while %s",
                                 sig == SIGINT    ? "SIGINT"
                                 : sig == SIGTERM ? "SIGTERM"
                                                  : "a signal",
                                 doing));
    }
}

}  // namespace reap
