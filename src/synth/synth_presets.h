// Named real-model shapes for benchmarks: layer count, experts, experts per token, shared
// experts, widths and vocabulary of a released model, with random weights.
#pragma once

#include "synth/synth.h"

#include <string>
#include <vector>

namespace reap::synth {

struct Preset {
    std::string name;
    std::string about;  // the model and what is scaled, for --list and --help
    Options     options;
};

const std::vector<Preset> & presets();

// The preset's options; throws reap::Error naming the presets for an unknown name.
Options preset_options(const std::string & name);

}  // namespace reap::synth
