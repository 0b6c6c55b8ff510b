#include "report/analysis.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
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

size_t kept_for_ratio(size_t n_expert, double keep_ratio) {
    if (!(keep_ratio > 0.0 && keep_ratio <= 1.0)) {
        fail("keep ratio %g is outside (0, 1]", keep_ratio);
    }
    // As kept_count_for_ratio() in expert_budget.cpp, minus what needs the model: the expert
    // groups and experts-per-token are unknown from a stats file alone. With grouped routing
    // (deepseek2-style) `reap prune` keeps the same number per group, so its choice can differ.
    return std::max<size_t>(1, size_t(std::lround(double(n_expert) * keep_ratio)));
}

std::vector<uint32_t> dropped_at_ratio(const std::vector<double> & scores, const std::vector<uint64_t> & count,
                                       double keep_ratio) {
    const size_t kept  = kept_for_ratio(scores.size(), keep_ratio);
    const auto   order = pruning_order(scores, count);
    std::vector<uint32_t> dropped(order.begin(), order.begin() + long(scores.size() - std::min(kept, scores.size())));
    std::sort(dropped.begin(), dropped.end());
    return dropped;
}

namespace report {

static std::string layer_list(const ExpertStats & s) {
    std::string o;
    for (const auto & [il, L] : s.layers) o += (o.empty() ? "" : ",") + std::to_string(il);
    return o;
}

static LayerView analyze_layer(int il, const LayerStats & L, const ReportOptions & o) {
    LayerView lv;
    lv.il      = il;
    lv.L       = &L;
    lv.score   = expert_scores(L, o.criterion, 0, il);
    lv.freq    = L.activation_frequency();
    lv.dropped = dropped_at_ratio(lv.score, L.count, o.keep_ratio);
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
    v.file = &f;
    v.name = base_name(f.path);
    for (const auto & [il, L] : f.stats.layers) {
        v.n_expert = std::max(v.n_expert, L.n_expert());
        v.layers.push_back(analyze_layer(il, L, o));
    }
    return v;
}

void check_same_model(const ReportFile & first, const ReportFile & f) {
    std::set<int> a, b;
    for (const auto & [il, L] : first.stats.layers) a.insert(il);
    for (const auto & [il, L] : f.stats.layers) b.insert(il);
    if (a != b) {
        fail("%s: covers MoE layers {%s} but %s covers {%s}: statistics of different models, cannot compare",
             f.path.c_str(), layer_list(f.stats).c_str(), first.path.c_str(), layer_list(first.stats).c_str());
    }
    for (const auto & [il, L] : f.stats.layers) {
        const size_t want = first.stats.layers.at(il).n_expert();
        if (L.n_expert() != want) {
            fail("%s: layer %d has %zu experts but %s has %zu: statistics of different models, cannot compare",
                 f.path.c_str(), il, L.n_expert(), first.path.c_str(), want);
        }
    }
}

void disambiguate_names(std::vector<FileView> & views) {
    auto disambiguate = [&views](auto && fix) {
        std::map<std::string, int> seen;
        for (const auto & v : views) seen[v.name]++;
        for (size_t i = 0; i < views.size(); i++) {
            if (seen[views[i].name] > 1) fix(views[i], i);
        }
    };
    disambiguate([](FileView & v, size_t) { v.name = v.file->path; });
    disambiguate([](FileView & v, size_t i) { v.name += strfmt(" (#%zu)", i + 1); });
}

PairAgreement compare(const FileView & A, const FileView & B, size_t ia, size_t ib) {
    PairAgreement p;
    p.a = ia;
    p.b = ib;
    double rho_sum = 0;
    for (size_t i = 0; i < A.layers.size(); i++) {
        const LayerView & la = A.layers[i];
        const LayerView & lb = B.layers[i];  // same layer: check_same_model() made the sets equal
        LayerAgreement    g;
        g.il           = la.il;
        g.rho          = spearman(la.score, lb.score);
        SetOverlap sets = set_overlap(la.dropped, lb.dropped);
        g.only_a       = std::move(sets.only_a);
        g.only_b       = std::move(sets.only_b);
        g.common       = sets.common;
        g.dropped      = la.dropped.size();
        g.in_union     = sets.in_union;
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

const char * criterion_meaning(Criterion c) {
    switch (c) {
        case Criterion::reap:               return "mean of gate weight \u00d7 \u2016expert output\u2016 over the tokens routed to the expert (REAP)";
        case Criterion::ean:                return "mean \u2016expert output\u2016 over the tokens routed to the expert (EAN)";
        case Criterion::frequency:          return "share of the layer's tokens routed to the expert";
        case Criterion::weighted_frequency: return "activation frequency \u00d7 mean gate weight";
        case Criterion::random:             return "random";
    }
    return "?";
}

// A meta value as display text ("" when absent).
static std::string meta_text(const json & meta, const char * key) {
    if (!meta.is_object() || !meta.contains(key) || meta[key].is_null()) return "";
    const json & v = meta[key];
    return v.is_string() ? v.get<std::string>() : v.dump();
}
std::vector<std::pair<std::string, std::string>> provenance(const FileView & v) {
    const json &                                     m = v.file->stats.meta;
    std::vector<std::pair<std::string, std::string>> out;
    auto add = [&](const char * label, const std::string & value) {
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
    if (m.is_object() && m.contains("progress") && m["progress"].is_object() &&
        m["progress"].value("complete", true) == false) {
        add("status", "incomplete (a checkpoint of an unfinished run)");
    }
    return out;
}

}  // namespace report
}  // namespace reap
