// The "_meta" record of a profile's stats file: the tool, the model and its MoE shape, the
// calibration fingerprint, the options that change the result, and per calibration file the
// sequences and tokens used.
#pragma once

#include "moe/moe_layout.h"
#include "profile/calibration.h"
#include "profile/moe_collector.h"
#include "profile/profiler.h"
#include "profile/samples.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace reap {

// `collector` is null for a --no-collect run (no graph was inspected).
nlohmann::json profile_meta(const ProfileOptions & opts, const MoeLayout & layout, const std::vector<int> & moe_layers,
                            uint64_t fingerprint, const MoeCollector * collector, const TokenizedSamples & samples,
                            const std::vector<CalibFileReport> & report);

}  // namespace reap
