#include "core/stop_signal.h"

#include <atomic>
#include <csignal>

namespace reap {

namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

struct StopSignalGuard::Saved {
    struct sigaction old_int {
    }, old_term{};
};

StopSignalGuard::StopSignalGuard() : saved_(new Saved) {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &saved_->old_int);
    sigaction(SIGTERM, &sa, &saved_->old_term);
}

StopSignalGuard::~StopSignalGuard() {
    sigaction(SIGINT, &saved_->old_int, nullptr);
    sigaction(SIGTERM, &saved_->old_term, nullptr);
    delete saved_;
}

int StopSignalGuard::received() const { return g_stop_signal; }

}  // namespace reap
