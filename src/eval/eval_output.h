// The eval table for the terminal, and as JSON or CSV for `eval -o`.
#pragma once

#include "eval/metrics.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

std::string    eval_table(const std::vector<EvalRow> & rows);
nlohmann::json eval_json(const std::vector<EvalRow> & rows);
std::string    eval_csv(const std::vector<EvalRow> & rows);

}  // namespace reap
