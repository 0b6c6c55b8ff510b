// `reap inspect`: the format-free half of the report (the formats' facts: gguf/gguf_inspect.h,
// hf/hf_inspect.h; put together by plan/model.h's model_report): the sizes after pruning and
// the text rendering of the JSON.
#pragma once

#include "moe/moe_shape.h"

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace reap {

std::string inspect_text(const nlohmann::json & report);

// The report's "pruned_sizes": the size after pruning a quarter, half and three quarters of the
// experts (`size_with(kept)`), or why such a pruning is impossible.
nlohmann::json pruned_sizes_json(const MoeShape & shape, const std::function<uint64_t(uint32_t)> & size_with);

}  // namespace reap
