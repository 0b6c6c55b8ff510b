// `reap inspect MODEL_DIR`: the facts of a Hugging Face folder under gguf/gguf_inspect.h's JSON
// keys, so the same text rendering (moe/inspect.h); the sizes after pruning are added by the
// seam (plan/model.h: model_report). Per-expert tensors are listed once per companion, as
// "…experts.{j}.…", with their bytes summed over the experts.
#pragma once

#include "hf/hf_checkpoint.h"
#include "hf/hf_layout.h"

#include <nlohmann/json.hpp>

namespace reap {

nlohmann::json hf_inspect_facts(const HfCheckpoint & c, const HfLayout & layout);

}  // namespace reap
