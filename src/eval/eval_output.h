// The eval table for the terminal, and as JSON, CSV or text for `eval -o`. Every form names the
// PPL convention (which positions were scored), shows a model by its file name or, where two
// models share a file name, by the shortest path suffix that tells them apart, and leaves the
// speed of a base read from its logits file empty ("-", null) rather than 0.
#pragma once

#include "eval/metrics.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

std::string    eval_table(const std::vector<EvalRow> & rows, PplConvention convention);
nlohmann::json eval_json(const std::vector<EvalRow> & rows, PplConvention convention);
std::string    eval_csv(const std::vector<EvalRow> & rows, PplConvention convention);

// The table file `-o path` asks for: JSON for .json, CSV for .csv, else the text table.
std::string eval_output_for(const std::string & path, const std::vector<EvalRow> & rows, PplConvention convention);

// Names for `paths` (in order): the last path component, extended to the left by components
// until paths that differ have different names.
std::vector<std::string> unique_model_names(const std::vector<std::string> & paths);

}  // namespace reap
