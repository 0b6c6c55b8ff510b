// Calibration convergence: `reap profile` keeps a copy of its sums when it has decoded 1/8, 1/4
// and 1/2 of its tokens ("_milestones" in the stats file). From them, the drop set a criterion
// picks on part of the data can be compared with the one on all of it (prune/convergence.h):
// if half the tokens already pick the same experts, more data would likely not change the plan.
#pragma once

#include "stats/expert_stats.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

inline constexpr const char * k_milestones_key = "_milestones";
// The shares of a run's tokens at which its sums are kept, ascending.
inline constexpr double k_milestone_fractions[] = {0.125, 0.25, 0.5};

// During a run of `total_tokens` tokens, after `tokens_done` of them: keeps a copy of the sums
// for every milestone crossed and not yet kept. Nothing at the end of the run (the stats
// themselves are the whole run), so a run decoded in one batch has no milestones.
void record_milestones(ExpertStats & stats, uint64_t tokens_done, uint64_t total_tokens);

// The milestone standing for `fraction` of the run, or nullptr.
const StatsMilestone * find_milestone(const ExpertStats & stats, double fraction);

// Merging runs merges their milestones of the same fraction (the sums of both runs at that
// share of each); a fraction one run lacks is dropped.
void merge_milestones(std::vector<StatsMilestone> & into, const std::vector<StatsMilestone> & other);

nlohmann::json              milestones_to_json(const std::vector<StatsMilestone> & m);
std::vector<StatsMilestone> milestones_from_json(const nlohmann::json & j, const std::string & origin);
// Throws unless every milestone covers the layers of `stats` with their expert counts and at
// most their tokens.
void check_milestones(const ExpertStats & stats, const std::string & origin);

}  // namespace reap
