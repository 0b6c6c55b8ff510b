// One line before llama.cpp aborts the process. ggml ends a run with abort() where it cannot go
// on (a failed assertion; an RPC server that went away mid-run: "Remote RPC server crashed or
// returned malformed response", with no endpoint named). The note says what happened in reap's
// terms, names the --rpc servers that no longer answer, and how the run continues (profile's
// checkpoint: --resume); the process still aborts as before.
#pragma once

#include <string>

namespace reap {

// Installs the note as ggml's abort callback. Call once at start-up.
void install_engine_abort_note();

// An --rpc endpoint in use: probed when llama.cpp aborts, so the note names the lost ones.
void note_rpc_endpoint(const std::string & endpoint);

// How the interrupted work continues ("continue with 'reap profile --resume' (checkpoint:
// s.json)"); "" for none. Set by the command that runs llama.cpp.
void set_engine_abort_hint(const std::string & hint);

// The note for ggml's abort message `message` (without a trailing newline): probes the noted
// endpoints (a short connect each).
std::string engine_abort_note(const std::string & message);

}  // namespace reap
