#include "commands.h"
#include "eval/eval_output.h"
#include "eval/evaluator.h"

#include <cstdio>

namespace reap::cli {

void add_eval(CLI::App & app) {
    auto   o      = std::make_shared<EvalOptions>();
    auto * cmd    = app.add_subcommand("eval", "compare pruned models with the base on held-out text (PPL, KL, top-1)");
    cmd->add_option("-m,--model", o->base, "base model (optional when --base-logits already exists)");
    cmd->add_option("--pruned", o->pruned, "pruned model(s) to compare with the base")->expected(1, -1);
    cmd->add_option("--data,-f", o->data, "held-out text file")->required();
    cmd->add_option("--base-logits", o->base_logits, "file of the base model's log-probabilities: reused if it exists, else written");
    cmd->add_option("-c,--ctx-size", o->n_ctx, "window size in tokens");
    cmd->add_option("--chunks", o->max_chunks, "use at most this many windows (-1: all)");
    cmd->add_flag("--ppl-second-half", o->second_half,
                  "score only the second half of every window, as llama-perplexity does (default: every position)");
    cmd->add_option("-t,--threads", o->n_threads, "CPU threads (0: all cores)");
    cmd->add_option("--n-gpu-layers", o->n_gpu_layers, "layers to offload to the GPU (alias -ngl)");
    cmd->add_option("-o,--output", o->output, "also write the table: .json or .csv by extension");
    cmd->add_flag("!--no-progress", o->progress, "no progress line on stderr");
    cmd->callback([o]() {
        const auto rows = run_eval(*o);
        std::fputs(eval_table(rows).c_str(), stdout);
        if (!o->output.empty()) {
            write_eval_table(o->output, rows);
        }
    });
}

}  // namespace reap::cli
