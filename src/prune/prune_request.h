// One `reap prune` job as a library call, the same sequence for either format (plan/model.h):
// choose the kept counts (a ratio, several ratios, a count to keep or to remove, or a saved
// plan), plan each output once, name the outputs, build the plan report, and write the pruned
// models unless it is a dry run. The front end only parses options and prints.
#pragma once

#include "plan/model.h"
#include "prune/merge_planner.h"
#include "prune/planner.h"
#include "stats/stats_combine.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reap {

struct PruneRequest {
    std::string             model;        // input GGUF (any split part) or Hugging Face folder
    std::string             plan;         // a saved plan (fixes the experts; excludes the amounts below)
    std::vector<double>     keep_ratios;  // exactly one of keep_ratios, keep, prune with stats
    std::optional<uint32_t> keep, prune;
    Criterion               criterion = Criterion::reap;
    uint64_t                seed      = 42;
    std::string             output;    // "" only with dry_run
    std::string             plan_out;  // also write the plan report here
    uint64_t                split_max_bytes       = 0;
    bool                    dry_run               = false;
    bool                    allow_incomplete      = false;  // accept stats of an unfinished profile run
    bool                    protect_super_experts = true;   // keep super experts (stats/super_experts.h)
    bool                    show_progress         = true;
    // --imatrix: llama.cpp's importance matrix of the input (GGUF only), pruned with the model to
    // imatrix_out (default: the output's name with .gguf replaced by .imatrix.gguf; with several
    // ratios each output's own, and imatrix_out takes {keep} as the output does), written only with
    // the model. Without stats, the imatrix criteria (imatrix-sum, imatrix-mean) rank from it.
    std::string imatrix;
    std::string imatrix_out;
    // --merge METHOD ("ream", "msmoe"; "" prunes): the dropped experts are folded into the kept
    // ones (prune/merge_planner.h), needing statistics profiled with --merge-stats.
    // --merge-align: "weights" (members' intermediate neurons matched to the centroid's) or "none".
    // --merge-group-size: ream's C, the most experts in one group, its centroid included (0: the
    // method's default, k_ream_default_group_size; msmoe has no limit).
    std::string merge_method;
    std::string merge_align      = "weights";
    uint32_t    merge_group_size = 0;

    // The statistics (instead of `plan`): one stats file, or several calibration sets of the same
    // model combined into one score per expert (stats/stats_combine.h).
    std::vector<std::string> stats;
    std::vector<double>      stats_weights;  // one per stats file (empty: equal)
    StatsCombine             stats_combine = k_default_stats_combine;
};

struct PlannedOutput {
    PruneJob                 job;           // the plan, the output name, the split size
    uint64_t                 output_size;   // bytes of all its files
    std::vector<std::string> files;         // what it writes (empty without an output)
    std::string              imatrix_file;  // the pruned importance matrix it writes (empty: none)
};

struct PruneOutcome {
    uint64_t                   original_size = 0;
    std::vector<PlannedOutput> outputs;
    nlohmann::json             plan_report;  // one plan, or {"plans": [...]} for several ratios
    bool                       wrote_models = false;
};

// "0.25,0.5" -> {0.25, 0.5}; throws naming --keep-ratio for anything that is not a number.
std::vector<double> parse_keep_ratios(const std::string & s);

// The option checks of a request, without reading any file: a plan or statistics (not both),
// exactly one amount with statistics, an output unless dry_run, the statistics' weights; --merge
// with a known method and alignment, one stats file, the default criterion, no --plan.
// Throws UsageError (exit 2). run_prune calls it first.
void check_prune_request(const PruneRequest & r);
// The merge options of a request (--merge, --merge-align, --merge-group-size).
MergeOptions merge_options(const PruneRequest & r);
// "500M", "4G", "123456" -> bytes (as llama.cpp's gguf-split --split-max-size); "" -> 0. A bad
// size is a usage error naming `option`.
uint64_t parse_split_size(const std::string & s, const char * option = "--split-max-size");
// "out.gguf" -> "out-keep0.50.gguf" for one of several ratios, or "{keep}" in the name replaced.
std::string ratio_output_name(const std::string & pattern, double keep_ratio, bool several);

// "out.gguf" -> "out.imatrix.gguf" (a name without .gguf gets .imatrix.gguf added): where the
// pruned importance matrix of an output goes by default.
std::string default_imatrix_output(const std::string & output);
// The pruned importance matrix of the output `output` (one of several when `several`) keeping
// `keep_ratio`: r.imatrix_out through ratio_output_name, or default_imatrix_output(output); ""
// without --imatrix or an output.
std::string imatrix_output_name(const PruneRequest & r, const std::string & output, double keep_ratio, bool several);

// The plans of the request for a model of `shape` (any format): the saved plan, or one plan per
// kept count from the stats (checked against the model: check_stats_match; with --merge, the
// merged plans of prune/merge_planner.h from the stats file's merge statistics), or for an imatrix
// criterion from `imatrix_stats` (Model::imatrix_stats; then super experts are not protected: an
// importance matrix has no output maxima). `r` has passed check_prune_request (run_prune checks
// it first).
std::vector<Plan> plans_for_request(const PruneRequest & r, const MoeShape & shape,
                                    const ExpertStats * imatrix_stats = nullptr);

// Refuses (before anything is written) an output (--plan-out, every file or folder of every
// model output unless a dry run) that is one of the inputs (`model_inputs`: the model's files or
// folder; --stats, --plan) or lies inside an input folder, and two outputs that are one file.
void refuse_prune_outputs_over_inputs(const PruneRequest & r, const PruneOutcome & out,
                                      std::vector<std::string> model_inputs);

// The plan report of `out.outputs` (one plan, or {"plans": [...]}) into out.plan_report, and
// to r.plan_out when given.
void finish_plan_report(const PruneRequest & r, PruneOutcome & out);

// The write jobs of the planned outputs, in order.
std::vector<PruneJob> planned_jobs(const PruneOutcome & out);

// The whole job on the opened model `m` (r.model is only named): plans, writes the plan report
// to plan_out, and writes the models unless dry_run. run_prune(r) of model/open_model.h opens
// r.model first.
PruneOutcome run_prune(const PruneRequest & r, const Model & m);

}  // namespace reap
