// The one place a path becomes a model: a Hugging Face folder (a directory with config.json) or
// a GGUF (any split of a split model), decided once here for every command, then used through
// plan/model.h's interface.
#pragma once

#include "plan/model.h"
#include "prune/prune_request.h"

#include <memory>
#include <string>

namespace reap {

// Opens and analyses the model at `path`; throws reap::Error naming it.
std::unique_ptr<Model> open_model(const std::string & path);

// `reap prune`: opens r.model and runs the request on it (prune/prune_request.h).
PruneOutcome run_prune(const PruneRequest & r);

}  // namespace reap
