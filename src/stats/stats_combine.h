// Several calibration sets (`reap prune --stats code.json --stats prose.json`): statistics of
// one model on different data (checked as `reap merge` checks its inputs), combined into one
// score per expert by a rule the plan records. Why a rule at all: calibrated on code alone, the
// trained model's prose suffers twice as much as its code; how the sets are combined moves the
// worst domain (bench/RESULTS.md, "several calibration sets").
//
// With s_i(e) the criterion's score of expert e on set i alone (every criterion's score is per
// token or per routed token of that set, so a set's size does not enter it) and w_i the
// --stats-weights (default all 1) normalised to sum 1:
//   tokens: the criterion on the sets' sums added (what `reap merge` then prune gives): every
//           token counts once, so the larger set weighs more. Weights are refused (a token is a token).
//   mean:   sum_i w_i s_i(e): equal weight per set (or as weighted), whatever its size.
//   max:    max_i w_i s_i(e): the worst case; an expert that matters to any one set ranks as it
//           ranks there.
// Ties in the order go by the summed activation counts (pruning_order). With one set every rule
// is the criterion on that set.
#pragma once

#include "stats/criteria.h"
#include "stats/expert_stats.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace reap {

enum class StatsCombine { tokens, mean, max };

struct StatsCombineInfo {
    StatsCombine id;
    const char * name;     // as on the command line and in plans
    const char * meaning;  // one line for --help and the plan
};

const std::vector<StatsCombineInfo> & stats_combine_rules();
const StatsCombineInfo &              stats_combine_info(StatsCombine c);
std::vector<std::string>              stats_combine_names();
// A usage error naming --stats-combine and the choices for anything else.
StatsCombine parse_stats_combine(const std::string & s);

// The default rule: the one with the lowest worst-domain KL on the trained model, REAP, code +
// prose (bench/RESULTS.md): mean 0.560 / 1.512 / 3.258 at 25 / 50 / 75 % pruned, tokens 0.516 /
// 1.652 / 3.354, max 0.708 / 1.645 / 3.314: lowest at 50 and 75 %, and in the mean over the three.
inline constexpr StatsCombine k_default_stats_combine = StatsCombine::mean;

// "1,2" -> {1, 2}: one positive finite number per --stats file (usage errors name --stats-weights).
std::vector<double> parse_stats_weights(const std::string & s, size_t n_sets);
// `weights` scaled to sum to 1 (empty: equal weights), without overflow (1e308,1e308 is 1,1). The
// one owner of what a weight may be: a usage error naming --stats-weights unless there is one
// per set, each finite and positive, and none too small beside the largest to stay positive.
std::vector<double> normalised_stats_weights(const std::vector<double> & weights, size_t n_sets);

struct CalibrationSet {
    std::string path;
    ExpertStats stats;
    double      weight = 1;  // normalised: the weights of all sets sum to 1
};

struct CalibrationSets {
    std::vector<CalibrationSet> sets;
    StatsCombine                rule = k_default_stats_combine;
    // Every set's sums added: the tokens rule's statistics, the activation counts that break
    // ties, and the maxima that find super experts (a maximum merges as a maximum).
    ExpertStats merged;

    // The combined scores of every MoE layer under `c` (lower is pruned first).
    std::map<int, std::vector<double>> scores(Criterion c, uint64_t seed) const;
    // What the plan records: the rule and its meaning, and per set its file, tokens, samples,
    // calibration files and weight. Null for one set (the plan's "stats" says it all).
    nlohmann::json to_json() const;
    // The sets' file names for the plan's "stats": "code.json", or "code.json+prose.json".
    std::string label() const;
};

// The option checks of load_calibration_sets, without reading a file: at least one path, one
// weight per path or none, no unequal weights with the tokens rule. Throws UsageError.
void check_stats_options(const std::vector<std::string> & paths, const std::vector<double> & weights,
                         StatsCombine rule);

// Loads one stats file, or several with `reap merge`'s checks (load_same_model_stats): the same
// file or run twice, statistics of different models. `weights`: empty (all equal) or one per
// path; refused with the tokens rule unless all equal.
CalibrationSets load_calibration_sets(const std::vector<std::string> & paths, const std::vector<double> & weights,
                                      StatsCombine rule);

}  // namespace reap
