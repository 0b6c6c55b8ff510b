// `reap inspect`: what a GGUF MoE model is made of, as JSON and as text.
#pragma once

#include "moe/moe_layout.h"

#include <nlohmann/json.hpp>
#include <string>

namespace reap {

// Report for the model at `f` (already analysed into `m`). The text form is rendered from it.
nlohmann::json inspect_report(const GgufFile & f, const MoeLayout & m);
std::string    inspect_text(const nlohmann::json & report);

// "1.23 MiB" style.
std::string human_bytes(uint64_t bytes);

}  // namespace reap
