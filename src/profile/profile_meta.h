// The "_meta" record of a profile's stats file: the tool, the model and its MoE shape, the
// calibration fingerprint, the options that change the result, and per calibration file the
// sequences and tokens used.
#pragma once

#include "llama/llama_runtime.h"
#include "moe/moe_layout.h"
#include "profile/calibration.h"
#include "profile/moe_collector.h"
#include "profile/profiler.h"
#include "profile/samples.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace reap {

// `model` is the model's files (the name of the first part and the total size identify it);
// `collector` is null for a --no-collect run (no graph was inspected).
nlohmann::json profile_meta(const ProfileOptions & opts, const ModelFiles & model, const MoeLayout & layout, const std::vector<int> & moe_layers,
                            uint64_t fingerprint, const MoeCollector * collector, const TokenizedSamples & samples,
                            const std::vector<CalibFileReport> & report);

}  // namespace reap
