// `reap report`: a self-contained HTML page and a text summary of one or more stats files:
// per-layer heatmaps of a criterion, never-activated experts, frequency skew, and for several
// files how far their expert rankings and pruned sets agree.
#pragma once

#include "report/analysis.h"
#include "report/html.h"
#include "report/rank_stats.h"

#include <string>
#include <vector>

namespace reap {

struct Report {
    std::string html;  // the whole page
    std::string text;  // the stdout summary (without the final "wrote ..." line)
};

// Builds the report for `files` (at least one). With several files, every file must cover the
// same layers with the same expert count as the first; otherwise throws reap::Error naming it.
Report build_report(const std::vector<ReportFile> & files, const ReportOptions & opts);

}  // namespace reap
