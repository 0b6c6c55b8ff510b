// Each sub-command registers its options and its action on the top-level CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace reap::cli {

void add_inspect(CLI::App & app);
void add_synth(CLI::App & app);

}  // namespace reap::cli
