// The "_meta" record of a profile's stats file: the tool, the model and its MoE shape, the
// calibration fingerprint, the options that change the result, and per calibration file the
// sequences and tokens used.
#pragma once

#include "moe/moe_shape.h"
#include "profile/calibration.h"
#include "profile/moe_collector.h"
#include "profile/profiler.h"
#include "profile/samples.h"
#include "stats/stats_meta.h"

#include <cstdint>
#include <vector>

namespace reap {

// `shape` is the model's (with its router fingerprint); `collector` is null for a --no-collect
// run (no graph was inspected).
StatsMeta profile_meta(const ProfileOptions & opts, const MoeShape & shape, uint64_t model_size, uint64_t fingerprint,
                       const MoeCollector * collector, const TokenizedSamples & samples,
                       const std::vector<CalibFileReport> & report);

}  // namespace reap
