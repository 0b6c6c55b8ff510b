#include "report/report.h"

#include "core/error.h"
#include "moe/expert_budget.h"
#include "report/text.h"

namespace reap {

Report build_report(const std::vector<ReportFile> & files, const ReportOptions & opts) {
    if (files.empty()) {
        fail("no stats files to report on");
    }
    if (!criterion_info(opts.criterion).describes_model || criterion_info(opts.criterion).from_imatrix) {
        std::string choices;
        for (const auto & name : criterion_names(true, true))
            choices += (choices.empty() ? "" : ", ") + name;
        fail("the %s criterion %s; choose %s", criterion_name(opts.criterion),
             criterion_info(opts.criterion).from_imatrix ? "reads an importance matrix, not stats files"
                                                         : "says nothing about the experts",
             choices.c_str());
    }
    MoeShape one_expert;
    one_expert.n_expert = 1;
    round_kept_count(one_expert, opts.keep_ratio);  // validates the ratio before any work
    for (size_t i = 1; i < files.size(); i++) {
        report::check_same_model(files[0], files[i]);
    }
    std::vector<report::FileView> views;
    for (const auto & f : files) {
        views.push_back(report::analyze(f, opts));
    }
    report::disambiguate_names(views);
    // All pairs: with the handful of runs people compare, every pair is still a short page.
    std::vector<report::PairAgreement> pairs;
    for (size_t a = 0; a < views.size(); a++) {
        for (size_t b = a + 1; b < views.size(); b++) {
            pairs.push_back(report::compare(views[a], views[b], a, b));
        }
    }
    return {report::html_page(views, pairs, opts), report::text_summary(views, pairs, opts)};
}

}  // namespace reap
