// The tests' small models and their statistics: the one place that says how small a synthetic
// model of each architecture can be, and how a test profiles and prunes one.
#pragma once

#include "profile/profiler.h"

#include <cstddef>
#include <string>

namespace reap::test {

// The calibration file the tests profile with (80 short JSONL samples).
extern const std::string k_calibration;

// The fewest layers that give `arch`'s synthetic model two MoE layers: deepseek2 starts with a
// dense layer, nemotron_h_moe needs its whole Mamba/MoE/attention pattern.
int fewest_layers(const std::string & arch);

// A quiet run (no progress line, one thread: ctest runs a test per core) of `reap profile -m model --data k_calibration -o out`;
// the caller sets how much data.
ProfileOptions profile_options(const std::string & model, const std::string & out);

// Profiles `model` in this process over the first `max_samples` calibration samples into `out`;
// returns `out`.
std::string profile(const std::string & model, const std::string & out, int max_samples = 8);

// `model` profiled over `max_samples` calibration samples and pruned to half its experts by the
// reap executable, as a user would run it, into `dir`.
struct HalfPruned {
    std::string stats, pruned;
};
HalfPruned profile_and_halve(const std::string & model, const std::string & dir, int max_samples = 8);

}  // namespace reap::test
