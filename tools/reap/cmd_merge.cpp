#include "commands.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "stats/stats_merge.h"

#include <cstdio>

namespace reap::cli {

namespace {

void merge(const std::vector<std::string> & files, const std::string & output) {
    refuse_output_over_inputs(output, files);  // the merged file would replace a run it adds up
    const ExpertStats all = merge_stats_files(files);
    if (!all.meta.complete()) {
        log_warn("an input is a checkpoint of an unfinished profile run; %s is marked unfinished", output.c_str());
    }
    all.save(output);
    std::printf("merged %zu files (%zu MoE layers, %llu tokens) into %s\n", files.size(), all.layers.size(),
                (unsigned long long) all.layers.begin()->second.total_tokens, output.c_str());
}

}  // namespace

void add_merge(CLI::App & app, CommandRun & run) {
    auto   files  = std::make_shared<std::vector<std::string>>();
    auto   output = std::make_shared<std::string>();
    auto * cmd    = app.add_subcommand("merge", "combine stats files of runs on the same model (sums and counts add)");
    cmd->add_option("stats", *files, "stats files from reap profile")->required()->expected(2, -1);
    cmd->add_option("-o,--output", *output, "merged stats file")->required();
    cmd->callback([files, output, &run]() { run = [files, output]() { merge(*files, *output); }; });
}

}  // namespace reap::cli
