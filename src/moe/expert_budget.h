// How many experts a pruned model keeps per MoE layer, and whether llama.cpp can load that.
#pragma once

#include "moe/moe_layout.h"

#include <cstdint>
#include <string>

namespace reap {

// The kept count for keeping a fraction `keep_ratio` (0, 1] of the experts: round to nearest,
// then validated against what llama.cpp's loader accepts. Throws reap::Error saying why a
// count is impossible (below experts-per-token, not divisible by the expert groups, ...).
uint32_t kept_count_for_ratio(const MoeLayout & m, double keep_ratio);

// Throws reap::Error when a model with `kept` experts per layer would not load or route.
void check_kept_count(const MoeLayout & m, uint32_t kept);

}  // namespace reap
