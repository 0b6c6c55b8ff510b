// The report's self-contained HTML page: a section per stats file (provenance, an SVG heatmap of
// the criterion with the experts pruning would drop crossed out, a per-layer table) and the
// agreement between runs.
#pragma once

#include "report/analysis.h"

#include <string>
#include <vector>

namespace reap {

// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(const std::string & s);

namespace report {

std::string html_page(const std::vector<FileView> & files, const std::vector<PairAgreement> & pairs,
                      const ReportOptions & o);

}  // namespace report
}  // namespace reap
