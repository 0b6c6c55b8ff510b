// How many experts a pruned model keeps per MoE layer, and whether llama.cpp can load that.
// The one definition of "kept count for a ratio", used by prune, inspect and the report.
#pragma once

#include "moe/moe_shape.h"

#include <cstdint>
#include <string>

namespace reap {

// The kept count for keeping a fraction `keep_ratio` (0, 1] of the experts, before any check:
// round to nearest; with expert groups, to the nearest multiple of the group count; at least
// one per group. Throws reap::Error only for a ratio outside (0, 1].
uint32_t round_kept_count(const MoeShape & m, double keep_ratio);

// Why a model with `kept` experts per layer would not load or route in llama.cpp (below
// experts-per-token, not divisible by the expert groups, ...); empty when it would.
std::string kept_count_problem(const MoeShape & m, uint32_t kept);

// Throws reap::Error with kept_count_problem() when it is not empty.
void check_kept_count(const MoeShape & m, uint32_t kept);

// round_kept_count() then check_kept_count(): what `reap prune --keep-ratio` keeps.
uint32_t kept_count_for_ratio(const MoeShape & m, double keep_ratio);

}  // namespace reap
