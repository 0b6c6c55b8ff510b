// What a pruned (or merged) output records of the plan it was made with, as plain data: the
// format-free side of the record each format writes into its output and reads back
// (gguf/gguf_pruning_record, hf/hf_pruning_record; model/open_model's read_pruning_record picks
// the format). The sweep reads it to recognise an output it made before (--resume, a re-run).
#pragma once

#include "plan/plan.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

struct PruningRecord {
    std::string                      source;     // base name of the model pruned
    std::string                      criterion;  // the plan's criterion
    std::string                      stats;      // base name of the stats file ("" none)
    MergeRecord                      merge;      // empty method: a pruning plan
    std::map<int, std::vector<Slot>> slots;      // per MoE layer: the output slots and their sources
    uint32_t                         n_expert_original = 0;

    // Equal in every field; weights exactly (two records read from the same stored floats, e.g.
    // a model and its quantized copy).
    bool operator==(const PruningRecord & o) const;
    bool operator!=(const PruningRecord & o) const { return !(*this == o); }
};

// Whether `r` is the record `plan` would write: the same source (plan.model), criterion and merge
// method, and per layer the same slots: the same experts in the same order, each weight within
// 1e-6 of the plan's (the formats store f32). The statistics' file name is not compared: the same
// plan may come from a copy of the statistics under another name.
bool same_map(const PruningRecord & r, const Plan & plan);

}  // namespace reap
