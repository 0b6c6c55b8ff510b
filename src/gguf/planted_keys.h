// The metadata keys of a synthetic model's planted ground truth: `reap synth` writes them and
// `reap inspect` reads them back, so their names live here, below both.
#pragma once

#include <string>

namespace reap {

// The key of the planted experts of kind `kind` in MoE layer `il`. kind: "dead", "rare", "weak",
// "super", and "super_channel" (the output channel of each super expert's outlier, in the order
// of "super").
inline std::string planted_key(int il, const char * kind) {
    return "reap.synth.layer." + std::to_string(il) + "." + kind;
}

}  // namespace reap
