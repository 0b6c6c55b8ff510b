// Each sub-command registers its options and its action on the top-level CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace reap {
struct LlamaFlags;
}

#include <string>
#include <vector>

namespace reap::cli {

void add_inspect(CLI::App & app);
void add_synth(CLI::App & app);
void add_profile(CLI::App & app);
void add_prune(CLI::App & app);
void add_eval(CLI::App & app);
void add_report(CLI::App & app);
void add_merge(CLI::App & app);
void add_sweep(CLI::App & app);

// llama.cpp's runtime flags (-t, -tb, -ngl, -ctk, -ctv, -fa, --no-mmap, --mlock, -ot, --cpu-moe,
// --n-cpu-moe, -dev, -sm, -ts, -mg, --rpc) on `cmd`, read into `flags`.
void add_llama_flags(CLI::App & cmd, LlamaFlags & flags);

// Rewrites llama.cpp's multi-letter single-dash flags (-ub, -ngl, -np, -ot, -fa, ...) to their long names.
std::vector<std::string> normalize_llama_flags(int argc, char ** argv);

}  // namespace reap::cli
