// Each sub-command registers its options and its action on the top-level CLI11 app.
//
// A command runs in two phases, and the exit status follows the phase, not the exception type:
//   1. parse and check: CLI11 parses the options, then the command's callback checks every
//      option value and combination without reading any input (the library's check_*_options)
//      and stores the work in `run`. An error here is a usage error: exit 2, "see --help".
//   2. run: main calls `run`. Whatever it throws is a runtime error (exit 1), interrupted
//      (130) or a bug (70): a missing file, a full disk, an input that does not fit.
#pragma once

#include <CLI/CLI.hpp>

namespace reap {
struct LlamaFlags;
}

#include <functional>
#include <string>
#include <vector>

namespace reap::cli {

// The work of the command given, set by its callback once its options are checked.
using CommandRun = std::function<void()>;

void add_inspect(CLI::App & app, CommandRun & run);
void add_synth(CLI::App & app, CommandRun & run);
void add_profile(CLI::App & app, CommandRun & run);
void add_prune(CLI::App & app, CommandRun & run);
void add_eval(CLI::App & app, CommandRun & run);
void add_report(CLI::App & app, CommandRun & run);
void add_merge(CLI::App & app, CommandRun & run);
void add_sweep(CLI::App & app, CommandRun & run);

// llama.cpp's runtime flags (-t, -tb, -ngl, -ctk, -ctv, -fa, --no-mmap, --mlock, -ot, --cpu-moe,
// --n-cpu-moe, -dev, -sm, -ts, -mg, --rpc) on `cmd`, read into `flags`.
void add_llama_flags(CLI::App & cmd, LlamaFlags & flags);

// Rewrites llama.cpp's multi-letter single-dash flags (-ub, -ngl, -np, -ot, -fa, ...) to their long names.
std::vector<std::string> normalize_llama_flags(int argc, char ** argv);

}  // namespace reap::cli
