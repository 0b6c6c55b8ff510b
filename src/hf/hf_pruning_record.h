// The record a pruned Hugging Face folder carries of its plan, reap_prune.json: written by the
// pruner and read back here, the one owner of both sides.
//
// Every pruned folder's record (unchanged for pruning plans): "tool", "date", "source" (the input
// folder as given), "n_expert_original", "n_expert", "kept" (layer -> kept ids: each slot's
// centroid), "plan" (the whole plan JSON, plan/plan.h) and "left_out" (weight files outside the
// index, when any). A merged plan adds "merge" ({"method", "align", "group_size"}) and "slots"
// (layer -> [{"sources": [{"expert": e, "weight": w}]}], the plan JSON's shape).
#pragma once

#include "plan/pruning_record.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reap {

inline constexpr const char * k_hf_prune_record = "reap_prune.json";

// The text of reap_prune.json for `plan` applied to the folder `source_dir` (of
// `n_expert_original` experts per layer); `left_out`: its weight files outside the index.
std::string hf_pruning_record_text(const Plan & plan, const std::string & source_dir, uint32_t n_expert_original,
                                   const std::vector<std::string> & left_out);

// A record's JSON read strictly: every field of its type, ids below n_expert_original, kept ids
// ascending, "slots" (present exactly when "merge" is) for the same layers as "kept", each slot
// led by its kept id, weights finite. Throws reap::Error naming `origin` otherwise.
PruningRecord hf_pruning_record_from_json(const nlohmann::json & j, const std::string & origin);

// The record of the folder `dir` (its reap_prune.json), or nullopt when it has none.
std::optional<PruningRecord> read_hf_pruning_record(const std::string & dir);

}  // namespace reap
