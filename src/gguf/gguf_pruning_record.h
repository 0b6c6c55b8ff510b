// The record a pruned GGUF carries of its plan, in `reap.prune.*` keys: written by the pruner and
// read back here, the one owner of both sides (so a key's name and type are defined once).
//
// Keys of every pruned model (unchanged since the first reap): reap.prune.criterion (str),
// .keep_ratio (f32), .n_expert_original (u32), .source (str: the input's base name), .stats (str,
// when the plan came from a stats file), and per MoE layer reap.prune.layer.<il>.kept (u32 array:
// each slot's centroid). A merged plan adds reap.prune.merge.method / .align (str) / .group_size
// (u32) and per layer reap.prune.layer.<il>.slot_sizes (u32 array: the sources of each slot),
// .sources (u32 array: the source experts, slot after slot) and .weights (f32 array: theirs).
// A pruning plan writes nothing else, so its files stay byte-identical to those of older reaps.
#pragma once

#include "gguf/gguf_file.h"
#include "plan/pruning_record.h"

#include "gguf.h"

#include <cstdint>
#include <optional>
#include <string>

namespace reap {

// Writes `plan`'s record into `ctx`, first removing any reap.prune.* keys `ctx` holds already
// (copied from an input that was itself pruned: a stale stats name or merge record would
// otherwise describe the wrong plan). `source`: the input's path or name (its base name is
// stored); `n_expert_original`: the input's expert count.
void write_pruning_record(gguf_context * ctx, const Plan & plan, const std::string & source,
                          uint32_t n_expert_original);

// The record in `ctx`'s keys, or nullopt when it has no reap.prune.* key (a model never pruned by
// reap). Strict: a key of the wrong type, a layer key that is not reap.prune.layer.<index>.<field>,
// ids not below n_expert_original, kept ids not ascending, slot sizes that do not add up to the
// sources and weights, a slot whose first source is not its kept id, a weight that is not finite,
// each throw reap::Error naming `origin`. Never aborts (types are checked before ggml reads them).
std::optional<PruningRecord> read_pruning_record(const gguf_context * ctx, const std::string & origin);
std::optional<PruningRecord> read_pruning_record(const GgufFile & f);

}  // namespace reap
