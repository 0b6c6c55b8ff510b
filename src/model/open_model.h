// The one place a path becomes a model: a Hugging Face folder (a directory with config.json) or
// a GGUF (any split of a split model), decided once here for every command, then used through
// plan/model.h's interface.
#pragma once

#include "plan/model.h"
#include "plan/pruning_record.h"
#include "prune/prune_request.h"

#include <memory>
#include <optional>
#include <string>

namespace reap {

// Opens and analyses the model at `path`; throws reap::Error naming it.
std::unique_ptr<Model> open_model(const std::string & path);

// What the model at `path` records of the plan it was pruned with (gguf/gguf_pruning_record.h,
// hf/hf_pruning_record.h by its format), or nullopt when reap did not prune it. Reads only the
// record (a GGUF's metadata, a folder's reap_prune.json); throws reap::Error on a damaged one.
std::optional<PruningRecord> read_pruning_record(const std::string & path);

// `reap prune`: opens r.model and runs the request on it (prune/prune_request.h).
PruneOutcome run_prune(const PruneRequest & r);

}  // namespace reap
