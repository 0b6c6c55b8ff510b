#include "stats/stats_combine.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "stats/stats_merge.h"

#include <algorithm>
#include <cmath>

namespace reap {

namespace {

const std::vector<StatsCombineInfo> k_rules = {
    {StatsCombine::tokens, "tokens",
     "the criterion on the sets' sums added, as 'reap merge' then prune: every token counts once, a larger set "
     "weighs more"},
    {StatsCombine::mean, "mean",
     "weighted mean over the sets of each set's own score (equal weight per set by default, whatever its size)"},
    {StatsCombine::max, "max",
     "per expert the largest weighted score over the sets: the worst case, an expert that matters to any one set "
     "ranks as it ranks there"},
};

}  // namespace

const std::vector<StatsCombineInfo> & stats_combine_rules() { return k_rules; }

const StatsCombineInfo & stats_combine_info(StatsCombine c) {
    for (const auto & r : k_rules) {
        if (r.id == c) return r;
    }
    fail("stats combination rule %d has no entry", int(c));
}

std::vector<std::string> stats_combine_names() {
    std::vector<std::string> names;
    for (const auto & r : k_rules)
        names.push_back(r.name);
    return names;
}

StatsCombine parse_stats_combine(const std::string & s) {
    std::string choices;
    for (const auto & r : k_rules) {
        if (s == r.name) return r.id;
        choices += (choices.empty() ? "" : ", ") + std::string(r.name);
    }
    fail_usage("--stats-combine: unknown rule '%s' (%s)", s.c_str(), choices.c_str());
}

std::vector<double> normalised_stats_weights(const std::vector<double> & weights, size_t n_sets) {
    if (weights.empty()) return std::vector<double>(n_sets, 1.0 / double(n_sets));
    if (weights.size() != n_sets) {
        fail_usage("--stats-weights: %zu weight(s) for %zu --stats file(s); give one per file", weights.size(), n_sets);
    }
    double largest = 0;
    for (double w : weights) {
        if (!std::isfinite(w) || !(w > 0)) fail_usage("--stats-weights: %g is not a positive finite number", w);
        largest = std::max(largest, w);
    }
    // Scaled by the largest first: 1e308,1e308 summed as they are overflows to infinity and
    // turns every weight, and so every score, into 0. Scaled, the sum is at most n_sets.
    double total = 0;
    for (double w : weights)
        total += w / largest;
    std::vector<double> out;
    for (double w : weights) {
        // 1e-300 beside 1e300 underflows to 0: that set would silently count for nothing.
        if (!(w / largest / total > 0)) {
            fail_usage("--stats-weights: %g is too small beside %g to count; give weights of similar scale", w,
                       largest);
        }
        out.push_back(w / largest / total);
    }
    return out;
}

std::vector<double> parse_stats_weights(const std::string & s, size_t n_sets) {
    std::vector<double> out;
    for (const std::string & item : split_list(s)) {
        double w = 0;
        if (!parse_number(item, w) || !(w > 0))
            fail_usage("--stats-weights: '%s' is not a positive number", item.c_str());
        out.push_back(w);
    }
    normalised_stats_weights(out, n_sets);  // refused here, before any file is read
    return out;
}

void check_stats_options(const std::vector<std::string> & paths, const std::vector<double> & weights,
                         StatsCombine rule) {
    if (paths.empty()) fail_usage("give --stats FILE (from reap profile) or --plan FILE");
    normalised_stats_weights(weights, paths.size());  // refused here, before any file is read
    const bool unequal =
        !weights.empty() && std::any_of(weights.begin(), weights.end(), [&](double w) { return w != weights[0]; });
    if (rule == StatsCombine::tokens && unequal) {
        fail_usage(
            "--stats-weights: the tokens rule counts every token once and takes no weights; use --stats-combine mean "
            "or max");
    }
}

CalibrationSets load_calibration_sets(const std::vector<std::string> & paths, const std::vector<double> & weights,
                                      StatsCombine rule) {
    check_stats_options(paths, weights, rule);
    const std::vector<double> normalised = normalised_stats_weights(weights, paths.size());
    CalibrationSets           out;
    out.rule = rule;
    std::vector<ExpertStats> runs;
    if (paths.size() == 1) {
        runs.push_back(ExpertStats::load(paths[0]));
    } else {
        runs = load_same_model_stats(paths);
    }
    for (size_t i = 0; i < paths.size(); i++)
        out.sets.push_back({paths[i], std::move(runs[i]), normalised[i]});
    out.merged = out.sets[0].stats;
    for (size_t i = 1; i < out.sets.size(); i++)
        out.merged.merge(out.sets[i].stats, out.sets[i].path);
    return out;
}

std::map<int, std::vector<double>> CalibrationSets::scores(Criterion c, uint64_t seed) const {
    std::map<int, std::vector<double>> out;
    for (const auto & [il, L] : merged.layers) {
        if (sets.size() == 1 || rule == StatsCombine::tokens) {
            out[il] = expert_scores(L, c, seed, il);
            continue;
        }
        std::vector<double> combined(L.n_expert(), 0.0);
        for (size_t i = 0; i < sets.size(); i++) {
            const std::vector<double> s = expert_scores(sets[i].stats.layers.at(il), c, seed, il);
            for (size_t e = 0; e < combined.size(); e++) {
                const double v = sets[i].weight * s[e];
                combined[e]    = rule == StatsCombine::mean ? combined[e] + v : (i == 0 ? v : std::max(combined[e], v));
            }
        }
        out[il] = std::move(combined);
    }
    return out;
}

nlohmann::json CalibrationSets::to_json() const {
    if (sets.size() < 2) return nullptr;
    nlohmann::json list = nlohmann::json::array();
    for (const auto & s : sets) {
        const StatsMeta & m = s.stats.meta;
        nlohmann::json    j = {{"stats", s.path}, {"weight", s.weight}};
        if (m.tokens) j["tokens"] = *m.tokens;
        if (m.samples) j["samples"] = *m.samples;
        if (!m.calibration.is_null()) j["calibration"] = m.calibration;
        list.push_back(j);
    }
    const StatsCombineInfo & info = stats_combine_info(rule);
    return {{"rule", info.name}, {"meaning", info.meaning}, {"sets", list}};
}

std::string CalibrationSets::label() const {
    if (sets.size() == 1) return sets[0].path;
    std::string s;
    for (const auto & set : sets)
        s += (s.empty() ? "" : "+") + base_name(set.path);
    return s;
}

}  // namespace reap
