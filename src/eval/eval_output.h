// The eval table for the terminal, and as JSON or CSV for `eval -o`.
#pragma once

#include "eval/metrics.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

// A row with tokens_per_s 0 was not timed (a base read from its logits file): shown as "-",
// null in JSON, empty in CSV.
std::string    eval_table(const std::vector<EvalRow> & rows);
nlohmann::json eval_json(const std::vector<EvalRow> & rows);
std::string    eval_csv(const std::vector<EvalRow> & rows);

// The table file's format follows its extension, .json or .csv; anything else is refused
// (before any work) rather than silently written as JSON.
void check_table_path(const std::string & path);
void write_eval_table(const std::string & path, const std::vector<EvalRow> & rows);

}  // namespace reap
