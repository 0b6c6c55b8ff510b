// `reap report` (SPEC §8): a self-contained HTML page and a text summary of one or more stats
// files: per-layer heatmaps of a criterion, never-activated experts, frequency skew, and for
// several files how far their expert rankings and pruned sets agree.
#pragma once

#include "stats/expert_stats.h"
#include "prune/planner.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// Ranks 1..n of `v` in ascending order; tied values share the average of their ranks.
std::vector<double> average_ranks(const std::vector<double> & v);

// Spearman's rank correlation of two samples of the same length: the Pearson correlation of
// their average ranks (so ties are handled exactly). NaN when a side has no ranking at all
// (fewer than 2 values, or all values equal).
double spearman(const std::vector<double> & a, const std::vector<double> & b);

// Gini coefficient of non-negative values: 0 when all are equal (or all zero), (n-1)/n when one
// holds everything. Throws reap::Error on a negative value.
double gini(const std::vector<double> & v);

struct ReportFile {
    std::string path;   // as given on the command line; shown (escaped) in the page
    ExpertStats stats;
};

struct ReportOptions {
    Criterion criterion  = Criterion::reap;  // random is refused: it says nothing about the model
    double    keep_ratio = 0.5;
};

struct Report {
    std::string html;  // the whole page
    std::string text;  // the stdout summary (without the final "wrote ..." line)
};

// Builds the report for `files` (at least one). With several files, every file must cover the
// same layers with the same expert count as the first; otherwise throws reap::Error naming it.
Report build_report(const std::vector<ReportFile> & files, const ReportOptions & opts);

// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(const std::string & s);

}  // namespace reap
