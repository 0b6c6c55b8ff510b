#include "prune/model_report.h"

#include "moe/inspect.h"
#include "prune/planner.h"

namespace reap {

nlohmann::json model_report(const Model & m) {
    nlohmann::json r = m.inspect_facts();
    r["pruned_sizes"] =
        pruned_sizes_json(m.shape(), [&](uint32_t kept) { return m.pruned_size(uniform_plan(m.shape(), kept), 0); });
    return r;
}

}  // namespace reap
