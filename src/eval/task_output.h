// The task scores of `reap eval` (eval/task_scoring.h) in its outputs: lines under the text
// table (percent, as llama-perplexity prints them) and each model's JSON "tasks" object
// (fractions): {hellaswag|winogrande|multiple_choice: {accuracy, stderr, n}}.
#pragma once

#include "eval/metrics.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

// "" when no row has task scores; `names` are the rows' model names.
std::string    task_table(const std::vector<EvalRow> & rows, const std::vector<std::string> & names);
nlohmann::json task_json(const std::vector<TaskScore> & scores);

}  // namespace reap
