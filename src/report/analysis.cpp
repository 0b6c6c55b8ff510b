#include "report/analysis.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "moe/expert_budget.h"
#include "prune/planner.h"
#include "report/rank_stats.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

namespace reap {

using nlohmann::json;

// Every expert id of a layer, in the order the planner prunes them.
static std::vector<uint32_t> pruning_order(const std::vector<double> & score, const std::vector<uint64_t> & count) {
    std::vector<uint32_t> ids(score.size());
    std::iota(ids.begin(), ids.end(), 0u);
    return reap::pruning_order(std::move(ids), score, count);
}

namespace report {

const char * const k_groups_unknown =
    "this stats file does not record the model's expert groups (made by an older reap): the dropped experts assume "
    "ungrouped routing; on a grouped model (deepseek2-style) reap prune may drop others";

static LayerView analyze_layer(int il, const LayerStats & L, const FileView & v, const ReportOptions & o) {
    LayerView lv;
    lv.il      = il;
    lv.L       = &L;
    lv.score   = expert_scores(L, o.criterion, 0, il);
    lv.freq    = L.activation_frequency();
    lv.dropped = dropped_experts(lv.score, L.count, v.shape, uint32_t(v.kept));
    for (uint32_t e = 0; e < L.n_expert(); e++) {
        if (L.count[e] == 0) lv.never.push_back(e);
    }
    const double mean = std::accumulate(lv.freq.begin(), lv.freq.end(), 0.0) / double(lv.freq.size());
    lv.skew           = mean > 0 ? *std::max_element(lv.freq.begin(), lv.freq.end()) / mean : k_nan;
    lv.gini_counts    = gini(std::vector<double>(L.count.begin(), L.count.end()));
    const auto order  = pruning_order(lv.score, L.count);
    lv.bottom         = order.front();
    lv.top            = order.back();
    return lv;
}

FileView analyze(const ReportFile & f, const ReportOptions & o) {
    FileView v;
    v.file   = &f;
    v.name   = base_name(f.path);
    v.shape  = f.stats.shape(&v.groups_known);
    v.kept   = round_kept_count(v.shape, o.keep_ratio);
    v.supers = find_super_experts(f.stats);
    for (const auto & [il, L] : f.stats.layers) {
        v.n_expert = std::max(v.n_expert, L.n_expert());
        v.layers.push_back(analyze_layer(il, L, v, o));
        for (const auto & s : v.supers.experts) {
            if (s.layer == il) v.layers.back().super.push_back(s.expert);
        }
    }
    if (kept_count_problem(v.shape, uint32_t(v.kept)).empty()) {
        v.convergence = drop_set_convergence(f.stats, v.shape, o.criterion, uint32_t(v.kept), 0);
    }
    return v;
}

// Runs on two quantizations of one model compare; runs on another architecture, shape or
// router weights do not.
void check_same_model(const ReportFile & first, const ReportFile & f) {
    reap::check_same_model(first.stats.meta, f.stats.meta, f.path, SameModel::shape);
    MoeShape shape = first.stats.shape();
    if (!first.stats.meta.n_expert_groups) shape.n_expert_groups = f.stats.meta.n_expert_groups.value_or(0);
    check_stats_match(f.stats, shape, f.path);
}

void disambiguate_names(std::vector<FileView> & views) {
    auto disambiguate = [&views](auto && fix) {
        std::map<std::string, int> seen;
        for (const auto & v : views)
            seen[v.name]++;
        for (size_t i = 0; i < views.size(); i++) {
            if (seen[views[i].name] > 1) fix(views[i], i);
        }
    };
    disambiguate([](FileView & v, size_t) { v.name = v.file->path; });
    disambiguate([](FileView & v, size_t i) { v.name += strfmt(" (#%zu)", i + 1); });
}

PairAgreement compare(const FileView & A, const FileView & B, size_t ia, size_t ib) {
    PairAgreement p;
    p.a            = ia;
    p.b            = ib;
    double rho_sum = 0;
    for (size_t i = 0; i < A.layers.size(); i++) {
        const LayerView & la = A.layers[i];
        const LayerView & lb = B.layers[i];  // same layer: check_same_model() made the sets equal
        LayerAgreement    g;
        g.il            = la.il;
        g.rho           = spearman(la.score, lb.score);
        SetOverlap sets = set_overlap(la.dropped, lb.dropped);
        g.only_a        = std::move(sets.only_a);
        g.only_b        = std::move(sets.only_b);
        g.common        = sets.common;
        g.dropped       = la.dropped.size();
        g.in_union      = sets.in_union;
        if (std::isfinite(g.rho)) {
            rho_sum += g.rho;
            p.rho_layers++;
            if (!std::isfinite(p.min_rho) || g.rho < p.min_rho) {
                p.min_rho       = g.rho;
                p.min_rho_layer = g.il;
            }
        }
        p.mean_overlap += g.overlap();
        p.mean_jaccard += g.jaccard();
        p.layers.push_back(std::move(g));
    }
    if (p.rho_layers) p.mean_rho = rho_sum / double(p.rho_layers);
    if (!p.layers.empty()) {
        p.mean_overlap /= double(p.layers.size());
        p.mean_jaccard /= double(p.layers.size());
    }
    return p;
}

std::string num(double v) { return std::isfinite(v) ? strfmt("%.4g", v) : "n/a"; }

std::string id_list(const std::vector<uint32_t> & v) { return id_ranges(v, ", "); }

// A meta value as display text ("" when absent).
static std::string meta_text(const json & meta, const char * key) {
    if (!meta.is_object() || !meta.contains(key) || meta[key].is_null()) return "";
    const json & v = meta[key];
    return v.is_string() ? v.get<std::string>() : v.dump();
}
std::vector<std::pair<std::string, std::string>> provenance(const FileView & v) {
    const json                                       m = v.file->stats.meta.to_json();
    std::vector<std::pair<std::string, std::string>> out;
    auto                                             add = [&](const char * label, const std::string & value) {
        if (!value.empty()) out.emplace_back(label, value);
    };
    add("model", meta_text(m, "model"));
    add("architecture", meta_text(m, "architecture"));
    add("experts", std::to_string(v.n_expert));
    add("per token", meta_text(m, "n_expert_used"));
    add("MoE layers", std::to_string(v.layers.size()));
    add("tokens", meta_text(m, "tokens").empty() && !v.layers.empty() ? std::to_string(v.layers[0].L->total_tokens)
                                                                      : meta_text(m, "tokens"));
    add("samples", meta_text(m, "samples"));
    if (m.is_object() && m.contains("calibration") && m["calibration"].is_array()) {
        std::string cal;
        for (const auto & c : m["calibration"]) {
            if (!c.is_object()) continue;
            cal += (cal.empty() ? "" : ", ") + base_name(meta_text(c, "file"));
            if (c.contains("tokens")) cal += " (" + meta_text(c, "tokens") + " tokens)";
        }
        add("calibration", cal);
    }
    add("date", meta_text(m, "date"));
    add("tool", meta_text(m, "tool"));
    const std::string part = v.file->stats.meta.partial_run();
    if (!part.empty()) add("status", "incomplete: " + part);
    return out;
}

}  // namespace report
}  // namespace reap
