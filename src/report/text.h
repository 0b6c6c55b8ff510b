// The report's stdout summary: a header and a line per layer for each file, then the agreement
// of every pair of runs.
#pragma once

#include "report/analysis.h"

#include <string>
#include <vector>

namespace reap::report {

std::string text_summary(const std::vector<FileView> & files, const std::vector<PairAgreement> & pairs,
                         const ReportOptions & o);

}  // namespace reap::report
