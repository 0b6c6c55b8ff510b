#include "commands.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "hf/hf_checkpoint.h"
#include "model/open_model.h"
#include "stats/super_experts.h"

#include <cstdio>

namespace reap::cli {

namespace {

struct PruneOpts {
    PruneRequest req;
    std::string  keep_ratio, criterion = "reap", split_max_size, stats_weights;
    std::string  stats_combine = stats_combine_info(k_default_stats_combine).name;
    int          keep = -1, prune = -1;
};

void print_outcome(const PruneRequest & r, const PruneOutcome & out) {
    if (r.dry_run && r.plan_out.empty()) std::printf("%s\n", out.plan_report.dump(1).c_str());
    for (const auto & o : out.outputs) {
        const Plan & p = o.job.plan;
        if (!out.wrote_models) {
            const std::string what = p.merge.empty() ? strfmt("keep %u of %u experts per MoE layer (%s)",
                                                              p.expert_count(), p.n_expert, p.criterion.c_str())
                                                     : strfmt("merge %u experts into %u per MoE layer (%s)", p.n_expert,
                                                              p.expert_count(), p.merge.method.c_str());
            std::fprintf(stderr, "plan: %s: %s -> %s\n", what.c_str(), human_bytes(out.original_size).c_str(),
                         human_bytes(o.output_size).c_str());
            continue;
        }
        const std::string name =
            o.files.size() > 1 ? strfmt("%s (%zu splits)", o.files[0].c_str(), o.files.size()) : o.job.output;
        std::printf("wrote %s: kept %u of %u experts per MoE layer (%s), %s -> %s (%.1f%%)\n", name.c_str(),
                    p.expert_count(), p.n_expert, p.criterion.c_str(), human_bytes(out.original_size).c_str(),
                    human_bytes(o.output_size).c_str(), 100.0 * double(o.output_size) / double(out.original_size));
        if (!o.imatrix_file.empty()) std::printf("wrote %s: its importance matrix\n", o.imatrix_file.c_str());
    }
}

// The request from the options, checked (usage errors, exit 2); reads no file.
PruneRequest checked_request(PruneOpts o) {
    PruneRequest & r = o.req;
    if (!o.keep_ratio.empty()) r.keep_ratios = parse_keep_ratios(o.keep_ratio);
    if (o.keep >= 0) r.keep = uint32_t(o.keep);
    if (o.prune >= 0) r.prune = uint32_t(o.prune);
    r.criterion     = parse_criterion(o.criterion);
    r.stats_combine = parse_stats_combine(o.stats_combine);
    if (!o.stats_weights.empty()) r.stats_weights = parse_stats_weights(o.stats_weights, r.stats.size());
    r.split_max_bytes = parse_split_size(o.split_max_size);
    check_prune_request(r);
    if (!r.imatrix.empty() && is_hf_folder(r.model)) {
        fail_usage("--imatrix: %s is a Hugging Face folder; an importance matrix is llama.cpp's, for a GGUF model",
                   r.model.c_str());
    }
    return r;
}

// A number of experts: a whole number, 0 or more. CLI11's NonNegativeNumber would say
// "-3 must be in [0 - 1.79769e+308]".
CLI::Validator expert_count_validator() {
    return CLI::Validator(
        [](std::string & v) -> std::string {
            const bool digits = !v.empty() && v.size() <= 9 && v.find_first_not_of("0123456789") == std::string::npos;
            return digits ? "" : "'" + v + "' is not a number of experts (a whole number, 0 or more)";
        },
        "COUNT");
}

std::string criteria_help() {
    std::string h = "score that ranks experts (" + std::string(k_pruning_order_text) + "):";
    for (const auto & c : criteria())
        h += strfmt("\n  %s: %s", c.name, c.meaning);
    return h;
}

std::string stats_combine_help() {
    std::string h = "how several --stats files combine into one score per expert (stats/stats_combine.h):";
    for (const auto & c : stats_combine_rules())
        h += strfmt("\n  %s: %s", c.name, c.meaning);
    return h;
}

}  // namespace

void add_prune(CLI::App & app, CommandRun & run) {
    auto   o   = std::make_shared<PruneOpts>();
    auto * cmd = app.add_subcommand(
        "prune", "drop the lowest-scoring experts and write a smaller GGUF or Hugging Face checkpoint");
    cmd->add_option("-m,--model,--input", o->req.model,
                    "input GGUF (any split of a split model; --input: the prototype's name), or a Hugging Face "
                    "model folder (config.json + safetensors): then -o names the output folder")
        ->required();
    cmd->add_option("--stats", o->req.stats,
                    "stats file from reap profile; repeat for several calibration sets of the same model (e.g. code "
                    "and prose), combined by --stats-combine");
    cmd->add_option("--stats-weights", o->stats_weights,
                    "weights of the --stats files, comma-separated, one per file (default: equal; not with the tokens "
                    "rule)");
    cmd->add_option("--stats-combine", o->stats_combine, stats_combine_help())
        ->capture_default_str()
        ->check(CLI::IsMember(stats_combine_names()));
    cmd->add_option("--imatrix", o->req.imatrix,
                    "llama.cpp's importance matrix of the input GGUF (reap profile --imatrix, llama-imatrix): "
                    "written pruned with the model, expert entries cut to the kept experts, for llama-quantize "
                    "--imatrix; without --stats, --criterion imatrix-sum or imatrix-mean ranks the experts from it");
    cmd->add_option("--imatrix-out", o->req.imatrix_out,
                    "the pruned importance matrix (default: the output's name with .gguf replaced by .imatrix.gguf; "
                    "with several ratios '-keep<r>' is added, or '{keep}' replaced)");
    cmd->add_option("--plan", o->req.plan, "apply a saved plan (from --dry-run / --plan-out) instead of --stats");
    cmd->add_option("-o,--output", o->req.output,
                    "output GGUF (or folder for a Hugging Face input); with several ratios '-keep<r>' is added, or "
                    "'{keep}' replaced");
    cmd->add_option("--keep-ratio,--keep_ratio", o->keep_ratio,
                    "fraction of experts to keep per layer; several: 0.25,0.5,0.75");
    cmd->add_option("--keep", o->keep, "experts to keep per MoE layer")->check(expert_count_validator());
    cmd->add_option("--prune", o->prune, "experts to remove per MoE layer")->check(expert_count_validator());
    cmd->add_option("--criterion", o->criterion, criteria_help())
        ->capture_default_str()
        ->check(CLI::IsMember(criterion_names()));
    cmd->add_option("--merge", o->req.merge_method,
                    "merge the experts instead of dropping them (stats profiled with --merge-stats): ream (REAM: the "
                    "most salient experts by REAP are centroids, each takes its nearest experts by gated-output and "
                    "router-logit similarity, averaged by REAP score) or msmoe (M-SMoE: the most frequent experts "
                    "take the others by router-logit similarity, averaged by frequency); the slot keeps the "
                    "centroid's router row")
        ->check(CLI::IsMember(merge_method_names()));
    cmd->add_option("--merge-align", o->req.merge_align,
                    "weights: the members' intermediate neurons matched to the centroid's before averaging; none")
        ->capture_default_str()
        ->check(CLI::IsMember(merge_align_names()));
    cmd->add_option("--merge-group-size", o->req.merge_group_size,
                    strfmt("ream's C: the most experts merged into one, the centroid included (default: %u, REAM's "
                           "reference; msmoe: no limit, this is ignored)",
                           k_ream_default_group_size))
        ->default_str(std::to_string(k_ream_default_group_size))  // 0 in the request: the method's own
        ->check(expert_count_validator());
    cmd->add_option("--seed", o->req.seed, "seed of the random criterion");
    cmd->add_flag("--dry-run", o->req.dry_run,
                  "print the plan (kept/dropped ids, scores, output size) and write no model");
    cmd->add_option("--plan-out", o->req.plan_out, "also write the plan as JSON to this file");
    cmd->add_option("--split-max-size", o->split_max_size,
                    "write split files of at most this much tensor data each (e.g. 500M, 4G), named like gguf-split");
    cmd->add_flag("--allow-incomplete", o->req.allow_incomplete,
                  "prune with the stats of an unfinished profile run (a checkpoint), with a warning");
    cmd->add_flag("!--no-protect-super-experts", o->req.protect_super_experts,
                  strfmt("do not protect super experts (default: protected, i.e. pruned last: experts whose largest "
                         "|output| is more than %gx the typical expert's (the %g-th percentile of the layer's or "
                         "model's maxima, the larger), arXiv 2507.23279; the plan lists them under super_experts)",
                         k_super_expert_ratio, k_super_expert_typical_percentile));
    cmd->add_flag("!--no-progress", o->req.show_progress, "no progress line on stderr");
    cmd->callback([o, &run]() { run = [r = checked_request(*o)]() { print_outcome(r, run_prune(r)); }; });
}

}  // namespace reap::cli
