#include "commands.h"
#include "core/error.h"
#include "stats/expert_stats.h"
#include "core/fs_util.h"

#include <cstdio>

namespace reap::cli {

namespace {

// Provenance keys that must agree for two runs to be of the same model.
void check_same_model(const nlohmann::json & a, const nlohmann::json & b, const std::string & path) {
    for (const char * k : {"architecture", "n_expert", "n_layer", "moe_layers"}) {
        if (a.contains(k) && b.contains(k) && a[k] != b[k]) {
            fail("%s: %s is %s, but %s in the first file: statistics of different models", path.c_str(), k,
                 b[k].dump().c_str(), a[k].dump().c_str());
        }
    }
}

}  // namespace

void add_merge(CLI::App & app) {
    auto   files  = std::make_shared<std::vector<std::string>>();
    auto   output = std::make_shared<std::string>();
    auto * cmd    = app.add_subcommand("merge", "combine stats files of runs on the same model (sums and counts add)");
    cmd->add_option("stats", *files, "stats files from reap profile")->required()->expected(2, -1);
    cmd->add_option("-o,--output", *output, "merged stats file")->required();
    cmd->callback([files, output]() {
        ExpertStats    all  = ExpertStats::load(files->front());
        nlohmann::json meta = all.meta;
        nlohmann::json cal  = meta.value("calibration", nlohmann::json::array());
        uint64_t       tokens = meta.value("tokens", uint64_t(0)), samples = meta.value("samples", uint64_t(0));
        for (size_t i = 1; i < files->size(); i++) {
            const ExpertStats s = ExpertStats::load((*files)[i]);
            check_same_model(meta, s.meta, (*files)[i]);
            all.merge(s, (*files)[i]);
            for (const auto & c : s.meta.value("calibration", nlohmann::json::array())) cal.push_back(c);
            tokens += s.meta.value("tokens", uint64_t(0));
            samples += s.meta.value("samples", uint64_t(0));
        }
        meta.erase("progress");
        meta.erase("fingerprint");  // a merged file is not a checkpoint to resume
        meta["merged_from"] = *files;
        meta["calibration"] = cal;
        meta["tokens"]      = tokens;
        meta["samples"]     = samples;
        meta["date"]        = iso_utc_now();
        meta["tool"]        = std::string("reap.cpp ") + REAP_VERSION;
        all.meta            = meta;
        all.save(*output);
        std::printf("merged %zu files (%zu MoE layers, %llu tokens) into %s\n", files->size(), all.layers.size(),
                    (unsigned long long) all.layers.begin()->second.total_tokens, output->c_str());
    });
}

}  // namespace reap::cli
