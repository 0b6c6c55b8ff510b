#include "core/atomic_file.h"
#include "commands.h"
#include "core/error.h"
#include "moe/expert_budget.h"
#include "core/fs_util.h"
#include "moe/inspect.h"
#include "prune/pruner.h"

#include <cstdio>
#include <sstream>

namespace reap::cli {

namespace {

struct PruneOpts {
    std::string model, stats, plan, output, keep_ratio, criterion = "reap", plan_out, split_max_size;
    int         keep = -1, prune = -1;
    uint64_t    seed = 42;
    bool        dry_run = false, progress = true;
};

std::vector<double> parse_ratios(const std::string & s) {
    std::vector<double> out;
    std::stringstream   ss(s);
    std::string         item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t       used = 0;
            const double r    = std::stod(item, &used);
            if (used != item.size()) throw std::invalid_argument(item);
            out.push_back(r);
        } catch (const std::exception &) {
            fail("--keep-ratio: '%s' is not a number", item.c_str());
        }
    }
    return out;
}

// "500M", "4G", "123456" -> bytes (as llama.cpp's gguf-split --split-max-size).
uint64_t parse_size(const std::string & s) {
    if (s.empty()) return 0;
    size_t   used = 0;
    double   v    = 0;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    const std::string unit = s.substr(used);
    const double      mul  = unit.empty() ? 1 : unit == "K" ? 1024.0 : unit == "M" ? 1048576.0 : unit == "G" ? 1073741824.0 : -1;
    if (used == 0 || mul < 0 || !(v > 0)) fail("--split-max-size: '%s' is not a size like 500M or 4G", s.c_str());
    return uint64_t(v * mul);
}

// "out.gguf" -> "out-keep0.50.gguf" (or "{keep}" in the name replaced) for several ratios.
std::string output_name(const std::string & pattern, const Plan & p, bool several) {
    const std::string tag = strfmt("%.2f", p.keep_ratio);
    const size_t      at  = pattern.find("{keep}");
    if (at != std::string::npos) {
        return pattern.substr(0, at) + tag + pattern.substr(at + 6);
    }
    if (!several) {
        return pattern;
    }
    const size_t dot = pattern.rfind(".gguf");
    return dot == std::string::npos ? pattern + "-keep" + tag : pattern.substr(0, dot) + "-keep" + tag + ".gguf";
}

void run(const PruneOpts & o) {
    const GgufFile  in     = GgufFile::open(o.model);
    const MoeLayout layout = analyze_moe(in);

    std::vector<Plan> plans;
    if (!o.plan.empty()) {
        if (!o.stats.empty() || !o.keep_ratio.empty() || o.keep >= 0 || o.prune >= 0) {
            fail("--plan already fixes the experts to keep; do not combine it with --stats/--keep-ratio/--keep/--prune");
        }
        Plan p = Plan::load(o.plan);
        check_plan(p, layout, o.plan);
        plans.push_back(p);
    } else {
        if (o.stats.empty()) fail("give --stats FILE (from reap profile) or --plan FILE");
        const int n_amounts = int(!o.keep_ratio.empty()) + int(o.keep >= 0) + int(o.prune >= 0);
        if (n_amounts != 1) fail("give exactly one of --keep-ratio, --keep, --prune");
        const ExpertStats stats = ExpertStats::load(o.stats);
        check_stats_match(stats, layout, o.stats);
        std::vector<uint32_t> counts;
        if (!o.keep_ratio.empty()) {
            for (double r : parse_ratios(o.keep_ratio)) counts.push_back(kept_count_for_ratio(layout, r));
        } else if (o.keep >= 0) {
            counts.push_back(uint32_t(o.keep));
        } else {
            if (uint32_t(o.prune) >= layout.n_expert) fail("--prune %d leaves no experts (the model has %u)", o.prune, layout.n_expert);
            counts.push_back(layout.n_expert - uint32_t(o.prune));
        }
        for (uint32_t kept : counts) {
            Plan p  = make_plan(stats, layout, parse_criterion(o.criterion), kept, o.seed);
            p.model = base_name(o.model);
            p.stats = o.stats;
            plans.push_back(p);
        }
    }

    if (o.output.empty() && !o.dry_run) fail("give -o/--output (or --dry-run)");
    const uint64_t        split_max = parse_size(o.split_max_size);
    std::vector<PruneJob> jobs;
    nlohmann::json        report = nlohmann::json::array();
    for (const auto & p : plans) {
        jobs.push_back({p, o.output.empty() ? "" : output_name(o.output, p, plans.size() > 1), split_max});
        nlohmann::json j        = p.to_json();
        j["output"]             = jobs.back().output;
        j["original_size"]      = layout.file_size;
        j["output_size"]        = pruned_file_size(in, layout, p, split_max);
        if (!o.output.empty()) j["output_files"] = pruned_file_names(in, layout, jobs.back());
        report.push_back(j);
    }
    const nlohmann::json plan_json = report.size() == 1 ? report[0] : nlohmann::json{{"plans", report}};
    if (!o.plan_out.empty()) {
        write_file_atomic(o.plan_out, plan_json.dump(1) + "\n");
    }
    if (o.dry_run) {
        if (o.plan_out.empty()) std::printf("%s\n", plan_json.dump(1).c_str());
        for (const auto & j : report) {
            std::fprintf(stderr, "plan: keep %u of %u experts per MoE layer (%s): %s -> %s\n", j["kept_experts"].get<uint32_t>(),
                         j["n_expert"].get<uint32_t>(), j["criterion"].get<std::string>().c_str(),
                         human_bytes(layout.file_size).c_str(), human_bytes(j["output_size"]).c_str());
        }
        return;
    }
    prune_model(in, layout, jobs, o.progress);
    for (const auto & j : report) {
        const auto & files = j["output_files"];
        const std::string name = files.size() > 1 ? strfmt("%s (%zu splits)", files[0].get<std::string>().c_str(), files.size())
                                                  : j["output"].get<std::string>();
        std::printf("wrote %s: kept %u of %u experts per MoE layer (%s), %s -> %s (%.1f%%)\n",
                    name.c_str(), j["kept_experts"].get<uint32_t>(), j["n_expert"].get<uint32_t>(),
                    j["criterion"].get<std::string>().c_str(), human_bytes(layout.file_size).c_str(),
                    human_bytes(j["output_size"]).c_str(),
                    100.0 * double(j["output_size"].get<uint64_t>()) / double(layout.file_size));
    }
}

}  // namespace

void add_prune(CLI::App & app) {
    auto   o   = std::make_shared<PruneOpts>();
    auto * cmd = app.add_subcommand("prune", "drop the lowest-scoring experts and write a smaller GGUF");
    cmd->add_option("-m,--model", o->model, "input GGUF (any split of a split model)")->required();
    cmd->add_option("--stats", o->stats, "stats file from reap profile");
    cmd->add_option("--plan", o->plan, "apply a saved plan (from --dry-run / --plan-out) instead of --stats");
    cmd->add_option("-o,--output", o->output, "output GGUF; with several ratios '-keep<r>' is added, or '{keep}' replaced");
    cmd->add_option("--keep-ratio", o->keep_ratio, "fraction of experts to keep per layer; several: 0.25,0.5,0.75");
    cmd->add_option("--keep", o->keep, "experts to keep per MoE layer");
    cmd->add_option("--prune", o->prune, "experts to remove per MoE layer");
    cmd->add_option("--criterion", o->criterion, "score that ranks experts (lowest pruned first)")
        ->check(CLI::IsMember({"reap", "ean", "frequency", "weighted-frequency", "random"}));
    cmd->add_option("--seed", o->seed, "seed of the random criterion");
    cmd->add_flag("--dry-run", o->dry_run, "print the plan (kept/dropped ids, scores, output size) and write no model");
    cmd->add_option("--plan-out", o->plan_out, "also write the plan as JSON to this file");
    cmd->add_option("--split-max-size", o->split_max_size,
                    "write split files of at most this much tensor data each (e.g. 500M, 4G), named like gguf-split");
    cmd->add_flag("!--no-progress", o->progress, "no progress line on stderr");
    cmd->callback([o]() { run(*o); });
}

}  // namespace reap::cli
