// `reap inspect MODEL_DIR`: the report of moe/inspect.h for a Hugging Face folder (same JSON
// keys, so the same text rendering). Per-expert tensors are listed once per companion, as
// "…experts.{j}.…", with their bytes summed over the experts.
#pragma once

#include "hf/hf_checkpoint.h"
#include "hf/hf_layout.h"

#include <nlohmann/json.hpp>

namespace reap {

nlohmann::json hf_inspect_report(const HfCheckpoint & c, const HfLayout & layout);

}  // namespace reap
