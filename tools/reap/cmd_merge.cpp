#include "commands.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "core/text.h"
#include "gguf/stats_imatrix.h"
#include "stats/stats_merge.h"

#include <cstdio>

namespace reap::cli {

namespace {

// "merged.json" -> "merged.imatrix.gguf".
std::string default_imatrix_name(const std::string & output) {
    return (ends_with(output, ".json") ? output.substr(0, output.size() - 5) : output) + ".imatrix.gguf";
}

void merge(const std::vector<std::string> & files, const std::string & output, const std::string & imatrix_out) {
    refuse_output_over_inputs(output, files);  // the merged file would replace a run it adds up
    ExpertStats all = merge_stats_files(files);
    if (!all.meta.complete()) {
        log_warn("an input is a checkpoint of an unfinished profile run; %s is marked unfinished", output.c_str());
    }
    // The runs' importance matrices add up as their sums do (profile --imatrix).
    std::vector<StatsMeta> metas;
    for (const std::string & f : files)
        metas.push_back(ExpertStats::load(f).meta);
    if (const std::optional<Imatrix> m = merge_recorded_imatrices(files, metas, !imatrix_out.empty())) {
        const std::string        path   = imatrix_out.empty() ? default_imatrix_name(output) : imatrix_out;
        std::vector<std::string> inputs = files;
        for (const std::string & p : recorded_imatrix_paths(files, metas))
            inputs.push_back(p);
        refuse_clashing_outputs({output, path}, inputs);
        write_imatrix(path, *m);
        all.meta.imatrix = StatsImatrix{imatrix_reference(output, path), imatrix_hash_text(*m)};
        std::printf("merged importance matrix: %s\n", path.c_str());
    }
    all.save(output);
    std::printf("merged %zu files (%zu MoE layers, %llu tokens) into %s\n", files.size(), all.layers.size(),
                (unsigned long long) all.layers.begin()->second.total_tokens, output.c_str());
}

}  // namespace

void add_merge(CLI::App & app, CommandRun & run) {
    auto   files   = std::make_shared<std::vector<std::string>>();
    auto   output  = std::make_shared<std::string>();
    auto   imatrix = std::make_shared<std::string>();
    auto * cmd     = app.add_subcommand("merge", "combine stats files of runs on the same model (sums and counts add)");
    cmd->add_option("stats", *files, "stats files from reap profile")->required()->expected(2, -1);
    cmd->add_option("-o,--output", *output, "merged stats file")->required();
    cmd->add_option("--imatrix-out", *imatrix,
                    "the runs' importance matrices (profile --imatrix) added up into this file (default, when every "
                    "run has one: the output's name with .imatrix.gguf for .json)");
    cmd->callback(
        [files, output, imatrix, &run]() { run = [files, output, imatrix]() { merge(*files, *output, *imatrix); }; });
}

}  // namespace reap::cli
