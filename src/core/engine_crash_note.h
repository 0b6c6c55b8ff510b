// One line before the process dies of SIGILL. llama.cpp's kernels are chosen when the engine is
// built (-march=native by default): an engine built for another CPU, or one whose kernels this
// kernel or VM does not allow, dies of SIGILL in the middle of a forward pass with no word. The
// note tells the user what happened and what to do; the process still dies of the same signal,
// so exit statuses and core dumps stay what they were.
#pragma once

namespace reap {

// Installs a SIGILL handler that writes the note to stderr and re-raises SIGILL with the default
// action. Async-signal-safe (write(2) and raise only). Call once at start-up.
void install_engine_crash_note();

// The note, as written to stderr (without the trailing newline).
const char * engine_crash_note();

}  // namespace reap
