// Each sub-command registers its options and its action on the top-level CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

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

// Rewrites llama.cpp's multi-letter single-dash flags (-ub, -ngl, -np) to their long names.
std::vector<std::string> normalize_llama_flags(int argc, char ** argv);

}  // namespace reap::cli
