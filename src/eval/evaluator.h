// `reap eval`: how close pruned models stay to the base model on held-out text.
// The text is cut into windows of the context size; every position of a window predicts the
// next token, and every such position is scored (or, with PplConvention::second_half, only those
// of the window's second half, as llama-perplexity does). The base model's log-probabilities are written once to a logits file
// (eval/base_logits.h), then each pruned model is run over the same windows and compared with
// them (eval/metrics.h): perplexity, KL divergence base -> model (mean and 99th percentile over
// tokens), top-1 agreement, size and speed. Several held-out texts (domains, eval/domains.h) are
// scored in one run, each model loaded once for all of them; with --prompts every model also
// continues the same prompts greedily (eval/generation.h).
#pragma once

#include "eval/domains.h"
#include "eval/generation.h"
#include "eval/metrics.h"
#include "eval/task_files.h"
#include "llama/context_size.h"
#include "llama/llama_flags.h"

#include <string>
#include <vector>

namespace reap {

// The llama.cpp runtime flags (-t, -ngl, -fa, -ot, --rpc, -ctk, ...) are the base class.
struct EvalOptions : LlamaFlags {
    std::string              base;                                // base model (may be omitted when base_logits exists)
    std::vector<std::string> pruned;                              // models to compare with the base
    std::vector<EvalDomain>  domains;                             // held-out texts (at least one)
    GenerationOptions        generation;                          // --prompts, --gen-tokens
    std::string              output;                              // the table file the caller writes: checked up front
    PplConvention            convention  = PplConvention::all;    // which positions are scored
    int                      n_ctx       = k_ctx_size_not_given;  // -c (llama/context_size.h)
    int                      max_chunks  = -1;                    // windows to use (-1: all)
    bool                     second_half = false;  // score only each window's second half (llama-perplexity)
    int                      n_batch     = 0;      // tokens per llama_decode call (0: -c, one window per call)
    int                      n_ubatch    = 0;      // tokens per micro-batch (0: as n_batch)
    bool                     progress    = true;
    TaskFiles                tasks;  // --hellaswag, --winogrande, --multiple-choice, --tasks
};

// The option checks, without reading any file: throws UsageError (exit 2). run_eval calls it first.
void check_eval_options(const EvalOptions & opts);

// One row for the base, then one per pruned model, in order. A row's top-level numbers are those
// of the first domain; `domains` holds every domain's, `generation` the continuations' scores.
// The first form reads and checks its inputs first (eval/eval_inputs.h: check_eval_inputs); the
// second takes inputs read already (the sweep checks them before it profiles, then adds the models
// it pruned to `in.options.pruned`).
std::vector<EvalRow> run_eval(const EvalOptions & opts);
struct EvalInputs;
std::vector<EvalRow> run_eval(const EvalInputs & in);

}  // namespace reap
