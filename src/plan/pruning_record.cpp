#include "plan/pruning_record.h"

#include <cmath>

namespace reap {

namespace {

bool same_merge(const MergeRecord & a, const MergeRecord & b) {
    return a.method == b.method && a.align == b.align && a.group_size == b.group_size;
}

// Slot lists equal with weights compared within `tol` (0: exactly).
bool same_slots(const std::vector<Slot> & a, const std::vector<Slot> & b, double tol) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++) {
        const auto & sa = a[i].sources;
        const auto & sb = b[i].sources;
        if (sa.size() != sb.size()) return false;
        for (size_t k = 0; k < sa.size(); k++) {
            if (sa[k].expert != sb[k].expert) return false;
            if (tol == 0 ? sa[k].weight != sb[k].weight : !(std::fabs(sa[k].weight - sb[k].weight) <= tol))
                return false;
        }
    }
    return true;
}

bool same_layers(const std::map<int, std::vector<Slot>> & a, const std::map<int, std::vector<Slot>> & b, double tol) {
    if (a.size() != b.size()) return false;
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
        if (ia->first != ib->first || !same_slots(ia->second, ib->second, tol)) return false;
    }
    return true;
}

std::map<int, std::vector<Slot>> plan_slots(const Plan & plan) {
    std::map<int, std::vector<Slot>> out;
    for (const auto & [il, lp] : plan.layers)
        out[il] = lp.slots;
    return out;
}

}  // namespace

bool PruningRecord::operator==(const PruningRecord & o) const {
    return source == o.source && criterion == o.criterion && stats == o.stats && same_merge(merge, o.merge) &&
           n_expert_original == o.n_expert_original && same_layers(slots, o.slots, 0);
}

bool same_map(const PruningRecord & r, const Plan & plan) {
    return r.source == plan.model && r.criterion == plan.criterion && same_merge(r.merge, plan.merge) &&
           same_layers(r.slots, plan_slots(plan), 1e-6);
}

}  // namespace reap
