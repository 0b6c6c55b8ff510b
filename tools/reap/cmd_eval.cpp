#include "commands.h"
#include "core/atomic_file.h"
#include "eval/eval_output.h"
#include "eval/evaluator.h"

#include <cstdio>
#include <map>

namespace reap::cli {

void add_eval(CLI::App & app) {
    auto   o   = std::make_shared<EvalOptions>();
    auto * cmd = app.add_subcommand("eval", "compare pruned models with the base on held-out text (PPL, KL, top-1)");
    cmd->add_option("-m,--model", o->base, "base model (optional when --base-logits already exists)");
    cmd->add_option("--pruned", o->pruned, "pruned model(s) to compare with the base")->expected(1, -1);
    cmd->add_option("--data,-f", o->data, "held-out text file")->required();
    cmd->add_option("--base-logits", o->base_logits,
                    "file of the base model's log-probabilities: reused if it exists, else written");
    cmd->add_option("-c,--ctx-size", o->n_ctx,
                    "window size in tokens (0: the model's trained context; a larger value is warned about)")
        ->default_str(k_ctx_size_default_text);
    const std::map<std::string, PplConvention> conventions = {{"all", PplConvention::all},
                                                              {"second-half", PplConvention::second_half}};
    cmd->add_option("--ppl-convention", o->convention,
                    "positions scored: all (every position of a window), second-half (llama-perplexity's)")
        ->transform(CLI::CheckedTransformer(conventions, CLI::ignore_case));
    cmd->add_option("--chunks", o->max_chunks, "use at most this many windows (-1: all)");
    cmd->add_option("-b,--batch-size", o->n_batch, "tokens per llama_decode call, at least -c (0: -c)")
        ->check(CLI::Range(0, 1 << 30));
    cmd->add_option("--ubatch-size", o->n_ubatch, "tokens per micro-batch (alias -ub; 0: as -b)")
        ->check(CLI::Range(0, 1 << 30));
    add_llama_flags(*cmd, *o);
    cmd->add_option("-o,--output", o->output, "also write the table: JSON for .json, CSV for .csv, else text");
    cmd->add_flag("!--no-progress", o->progress, "no progress line on stderr");
    cmd->callback([o]() {
        const auto rows = run_eval(*o);
        std::fputs(eval_table(rows, o->convention).c_str(), stdout);
        if (!o->output.empty()) {
            write_file_atomic(o->output, eval_output_for(o->output, rows, o->convention));
        }
    });
}

}  // namespace reap::cli
