#include "commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "prune/prune_request.h"
#include "report/report.h"

#include <cstdio>

namespace reap::cli {

namespace {

struct ReportOpts {
    std::vector<std::string> stats;
    std::string              output     = "report.html";
    std::string              criterion  = "reap";
    std::string              keep_ratio = "0.5";
};

void write_report(const ReportOpts & o, double keep_ratio) {
    // `reap report stats.json -o stats.json` would replace hours of profiling with a page.
    refuse_output_over_inputs(o.output, o.stats);
    std::vector<ReportFile> files;
    for (const auto & path : o.stats) {
        files.push_back({path, ExpertStats::load(path)});
        const std::string part = files.back().stats.meta.partial_run();
        if (!part.empty()) log_warn("%s is %s: it covers part of the calibration data", path.c_str(), part.c_str());
    }
    const Report r = build_report(files, {parse_criterion(o.criterion), keep_ratio});
    write_file_atomic(o.output, r.html);
    std::fputs(r.text.c_str(), stdout);
    std::printf("wrote %s\n", o.output.c_str());
}

}  // namespace

void add_report(CLI::App & app, CommandRun & run) {
    auto   o   = std::make_shared<ReportOpts>();
    auto * cmd = app.add_subcommand("report", "HTML page and text summary of stats files: heatmaps, skew, agreement");
    cmd->add_option("stats", o->stats, "stats file(s) from reap profile; several are compared with each other")
        ->required();
    cmd->add_option("-o,--output", o->output, "HTML file to write");
    cmd->add_option("--criterion", o->criterion, "score shown in the heatmaps and compared between files")
        ->check(CLI::IsMember(criterion_names(true, true)));
    cmd->add_option("--keep-ratio", o->keep_ratio, "mark the experts that pruning to this fraction would drop");
    cmd->callback([o, &run]() {
        const std::vector<double> keep = parse_keep_ratios(o->keep_ratio);  // prune's rule: one owner
        if (keep.size() != 1) fail_usage("--keep-ratio: give one fraction, not %zu", keep.size());
        run = [o, keep_ratio = keep[0]]() { write_report(*o, keep_ratio); };
    });
}

}  // namespace reap::cli
