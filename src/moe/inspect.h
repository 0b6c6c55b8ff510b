// `reap inspect`: what a GGUF MoE model is made of, as JSON and as text.
#pragma once

#include "moe/moe_layout.h"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace reap {

// Report for the model at `f` (already analysed into `m`). The text form is rendered from it.
nlohmann::json inspect_report(const GgufFile & f, const MoeLayout & m);
std::string    inspect_text(const nlohmann::json & report);

// The report's "pruned_sizes": the size after pruning a quarter, half and three quarters of the
// experts (`size_with(kept)`), or why such a pruning is impossible. GGUF and HF inspect share it.
nlohmann::json pruned_sizes_json(const MoeShape & shape, const std::function<uint64_t(uint32_t)> & size_with);

// "1.23 MiB" style.
std::string human_bytes(uint64_t bytes);

}  // namespace reap
