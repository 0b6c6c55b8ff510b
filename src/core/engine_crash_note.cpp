#include "core/engine_crash_note.h"

#include <unistd.h>
#include <csignal>
#include <cstring>

namespace reap {

namespace {

constexpr char k_note[] =
    "reap: fatal: the llama.cpp engine executed an instruction this CPU or VM does not allow "
    "(SIGILL); rebuild it for this machine (scripts/setup.sh)";

extern "C" void on_illegal_instruction(int sig) {
    // SA_RESETHAND has already restored the default action: re-raising ends the process with the
    // signal it received once this handler returns (it stays blocked until then).
    static const char line[]  = "\n";
    ssize_t           ignored = write(STDERR_FILENO, line, 1);
    ignored                   = write(STDERR_FILENO, k_note, sizeof k_note - 1);
    ignored                   = write(STDERR_FILENO, line, 1);
    (void) ignored;
    raise(sig);
}

}  // namespace

const char * engine_crash_note() { return k_note; }

void install_engine_crash_note() {
    struct sigaction sa {};
    sa.sa_handler = on_illegal_instruction;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGILL, &sa, nullptr);
}

}  // namespace reap
