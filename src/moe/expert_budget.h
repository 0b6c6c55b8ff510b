// How many experts a pruned model keeps per MoE layer, and whether llama.cpp can load that.
// The one definition of "kept count for a ratio", used by prune, inspect and the report.
#pragma once

#include "moe/moe_shape.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// The kept count for keeping a fraction `keep_ratio` (0, 1] of the experts, before any check:
// round to nearest; with expert groups, to the nearest multiple of the group count; at least
// one per group. Throws reap::Error only for a ratio outside (0, 1].
uint32_t round_kept_count(const MoeShape & m, double keep_ratio);

// GroveMoE (shape.experts_per_chunk > 0): how many experts each surviving adjugate ("chunk")
// group keeps when a layer keeps `kept`. llama.cpp maps expert j to chunk j / experts_per_group
// with one value for every chunk, so every kept chunk keeps the same number of its experts and
// the other chunks go with their *_chexps slice; llama.cpp's graph also needs at least
// experts-per-token adjugate experts. The largest such number (whole groups first, each
// adjugate keeping the experts it was trained with); 0 when no number fits, or for a model
// without chunk experts.
uint32_t kept_per_chunk(const MoeShape & m, uint32_t kept);

// GroveMoE: the adjugate ("chunk") experts that serve at least one of the `kept` experts
// (ascending ids), ascending: the *_chexps slices a pruned model keeps.
std::vector<uint32_t> kept_chunks(const std::vector<uint32_t> & kept, uint32_t experts_per_chunk);

// Why a model with `kept` experts per layer would not load or route in llama.cpp (below
// experts-per-token, not divisible by the expert groups, ...); empty when it would.
std::string kept_count_problem(const MoeShape & m, uint32_t kept);

// Throws reap::Error with kept_count_problem() when it is not empty.
void check_kept_count(const MoeShape & m, uint32_t kept);

// round_kept_count() then check_kept_count(): what `reap prune --keep-ratio` keeps.
uint32_t kept_count_for_ratio(const MoeShape & m, double keep_ratio);

}  // namespace reap
