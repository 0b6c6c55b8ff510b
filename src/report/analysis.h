// What the report says about stats files, before any formatting: per-file and per-layer views
// (scores, never-activated experts, skew, the experts pruning would drop) and the agreement of
// two runs layer by layer. The HTML page and the text summary both render these.
#pragma once

#include "prune/convergence.h"
#include "prune/planner.h"
#include "stats/expert_stats.h"
#include "stats/super_experts.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace reap {

struct ReportFile {
    std::string path;  // as given on the command line; shown (escaped) in the page
    ExpertStats stats;
};

struct ReportOptions {
    Criterion criterion  = Criterion::reap;  // random is refused: it says nothing about the model
    double    keep_ratio = 0.5;
};

namespace report {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

// What the report says about one layer of one stats file.
struct LayerView {
    int                   il = 0;
    const LayerStats *    L  = nullptr;
    std::vector<double>   score, freq;
    std::vector<uint32_t> dropped, never;
    std::vector<uint32_t> super;                      // super experts (stats/super_experts.h): reap prune protects them
    double                skew = 0, gini_counts = 0;  // skew: max / mean activation frequency
    uint32_t              top = 0, bottom = 0;
};

struct FileView {
    const ReportFile *     file = nullptr;
    std::string            name;  // base name
    size_t                 n_expert = 0;
    MoeShape               shape;                 // as the stats file records it
    bool                   groups_known = false;  // older stats files do not record expert groups
    size_t                 kept         = 0;      // what reap prune keeps at the report's ratio
    std::vector<LayerView> layers;
    SuperExperts           supers;       // over the whole file (the rule compares all layers)
    Convergence            convergence;  // of the drop set at the report's ratio
};

// Agreement of two runs on one layer.
struct LayerAgreement {
    int                   il     = 0;
    double                rho    = k_nan;
    size_t                common = 0, dropped = 0, in_union = 0;
    std::vector<uint32_t> only_a, only_b;
    // |A∩B| / |A| (A and B have the same size); both empty (keep ratio 1) counts as full agreement.
    double overlap() const { return dropped ? double(common) / double(dropped) : 1.0; }
    double jaccard() const { return in_union ? double(common) / double(in_union) : 1.0; }
};

struct PairAgreement {
    size_t                      a = 0, b = 0;  // file indices
    std::vector<LayerAgreement> layers;
    double                      mean_rho = k_nan, min_rho = k_nan, mean_overlap = 0, mean_jaccard = 0;
    int                         min_rho_layer = -1;
    size_t                      rho_layers    = 0;  // layers with a defined correlation
};

FileView analyze(const ReportFile & f, const ReportOptions & o);

// Comparison needs a model of the same shape (the one same-model check, at SameModel::shape,
// then the layers and expert counts of the statistics); throws reap::Error naming `f`.
void check_same_model(const ReportFile & first, const ReportFile & f);

// Runs are often named alike (run1/stats.json, run2/stats.json): where base names collide,
// show the paths as given, and number what is still ambiguous (the same file twice).
void disambiguate_names(std::vector<FileView> & views);

// Layer-by-layer agreement of files A (index ia) and B (index ib) that check_same_model() passed.
PairAgreement compare(const FileView & A, const FileView & B, size_t ia, size_t ib);

// ---- display helpers shared by the page and the summary ----

std::string num(double v);  // "%.4g", or "n/a" when not finite
std::string id_list(const std::vector<uint32_t> & v);

// Shown when a stats file does not record the expert groups: the dropped sets may then differ
// from what prune drops on a grouped model.
extern const char * const k_groups_unknown;

// Provenance from "_meta" as (label, value) pairs, in reading order; only what is present.
std::vector<std::pair<std::string, std::string>> provenance(const FileView & v);

}  // namespace report
}  // namespace reap
