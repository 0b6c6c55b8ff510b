// `reap sweep`: from a model and calibration data to the answer "how far can I prune it?".
// Profiles once (or takes --stats), prunes at every ratio x criterion, evaluates every pruned
// model against the base on the held-out data, and chooses the smallest model within the user's
// tolerance (sweep/sweep_choice.h). Writes OUTDIR/sweep.json (every model's eval entry, its
// criterion and ratios) and OUTDIR/sweep.html (sweep/sweep_html.h).
//
// Files in OUTDIR: .reap-sweep.json (what the folder belongs to; sweep/sweep_folder.h), stats.json
// (the profile), <criterion>-<pct>.gguf (pruned models; <method>-<pct>.gguf merged ones; those that are not the answer are removed
// unless keep_all), base-logits/ (the base's log-probabilities), sweep.json, sweep.html. OUTDIR is
// new, empty, or this sweep's own (resume): what is there is then reused after it is checked to
// belong to this model and these statistics; any other folder is refused before any work.
//
// With quant types (--quant Q8_0,Q4_0): the base and every pruned model are also quantized to
// each type (llama/quantize.h), base-<TYPE>.gguf and <criterion>-<pct>-<TYPE>.gguf, each with its
// own importance matrix: the base's from the sweep's profile (imatrix.gguf, kept like stats.json)
// or --imatrix with --stats, a pruned model's cut from it by prune (<criterion>-<pct>.imatrix.gguf,
// removed with the non-answers). Every point, pruned, quantized or both, is evaluated against the
// unquantized base in the same run, and the answer is the smallest of them all within tolerance.
#pragma once

#include "eval/generation.h"
#include "eval/task_files.h"
#include "llama/context_size.h"
#include "llama/llama_flags.h"
#include "stats/stats_combine.h"
#include "sweep/sweep_choice.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

struct SweepOptions : LlamaFlags {
    std::string              model;       // base GGUF
    std::vector<std::string> calib;       // calibration files (profile --data); or
    std::vector<std::string> stats;       // statistics of earlier profiles of this model (several: combined)
    std::vector<std::string> data;        // held-out text: [NAME=]FILE (eval/domains.h)
    GenerationOptions        generation;  // --prompts, --gen-tokens (eval/generation.h)
    TaskFiles                tasks;       // --hellaswag, --winogrande, --multiple-choice, --tasks
    std::string              out_dir;
    std::vector<double>      prune_ratios = {0.25, 0.5, 0.625, 0.75};  // fractions of experts removed
    std::vector<std::string> criteria     = {"reap", "frequency"};
    // Merging methods (prune/merge_planner.h): a merged point per method and ratio beside the
    // pruned ones, the same sizes; the profile then collects the merge statistics (--merge-stats).
    std::vector<std::string> merge;
    std::vector<std::string> quant;    // llama-quantize's types (llama/quantize.h); none: no quantized points
    std::string              imatrix;  // with stats: the base's importance matrix for the quantized points
    SweepTolerance           tolerance;
    int                      n_ctx       = k_ctx_size_not_given;  // eval windows (llama/context_size.h)
    int                      max_chunks  = -1;                    // eval windows per domain (-1: all)
    long                     max_samples = -1;                    // calibration samples (-1: all)
    bool                     resume      = false;
    bool                     keep_all    = false;
    bool                     progress    = true;

    std::vector<double> stats_weights;                            // as prune --stats-weights
    StatsCombine        stats_combine = k_default_stats_combine;  // as prune --stats-combine
};

struct SweepResult {
    nlohmann::json report;  // what sweep.json holds
    std::string    chosen;  // path of the answer (the base when no pruned model is within tolerance)
    bool           chosen_is_base = false;
};

// The option checks, without reading any file: throws UsageError (exit 2) for a value or a
// combination no input could make right. run_sweep calls it first.
void check_sweep_options(const SweepOptions & o);

SweepResult run_sweep(const SweepOptions & o);

}  // namespace reap
