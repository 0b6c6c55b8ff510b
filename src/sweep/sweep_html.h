// The page of a sweep: curves of file size against worst-domain KL, task accuracy and
// degeneration rate (a line per criterion, the tolerance drawn, the answer ringed), the table of
// every model, and the answer. Self-contained (inline SVG and CSS, no script, no network).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace reap {

// `report`: what run_sweep writes to sweep.json.
std::string sweep_html(const nlohmann::json & report);

}  // namespace reap
