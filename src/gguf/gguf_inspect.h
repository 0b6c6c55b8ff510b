// `reap inspect` on a GGUF: what the model is made of (layers, expert tensors, planted ground
// truth), as the JSON keys of moe/inspect.h. The sizes after pruning are added by the seam
// (plan/model.h: model_report), from the same function `reap prune --dry-run` uses.
#pragma once

#include "gguf/moe_layout.h"

#include <nlohmann/json.hpp>

namespace reap {

nlohmann::json gguf_inspect_facts(const GgufFile & f, const MoeLayout & m);

}  // namespace reap
