// `reap inspect`'s report of a model, written once against the format seam (plan/model.h).
#pragma once

#include "plan/model.h"

#include <nlohmann/json.hpp>

namespace reap {

// `reap inspect`'s report (moe/inspect.h renders it as text): the format's facts and the size
// after pruning a quarter, half and three quarters of the experts, each pruned_size() of the
// uniform_plan() keeping that many, so it is what `reap prune --dry-run` reports for such a plan.
nlohmann::json model_report(const Model & m);

}  // namespace reap
