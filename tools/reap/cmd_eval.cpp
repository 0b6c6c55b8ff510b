#include "commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/degeneration.h"
#include "eval/eval_output.h"
#include "eval/evaluator.h"
#include "eval/generation.h"
#include "llama/context_size.h"

#include <cstdio>
#include <map>

namespace reap::cli {

namespace {

// The --data and --base-logits arguments, resolved into EvalOptions::domains when the command runs.
struct DomainArgs {
    std::vector<std::string> data, base_logits;
};

}  // namespace

void add_eval(CLI::App & app, CommandRun & run) {
    auto   o    = std::make_shared<EvalOptions>();
    auto   args = std::make_shared<DomainArgs>();
    auto * cmd  = app.add_subcommand(
         "eval", "compare pruned models with the base on held-out texts (PPL, KL, top-1 per domain) and in generation");
    cmd->add_option("-m,--model", o->base, "base model (optional when --base-logits already exists)");
    cmd->add_option("--pruned", o->pruned, "pruned model(s) to compare with the base")->expected(1, -1);
    cmd->add_option("--data,-f", args->data,
                    "held-out text, [NAME=]FILE; repeat for several domains (NAME: the file's name without "
                    "extension): a table per domain and a summary, mean and worst domain")
        ->required()
        ->take_all();
    cmd->add_option("--base-logits", args->base_logits,
                    "file of the base model's log-probabilities: reused if it exists, else written; one per --data, "
                    "or one folder holding NAME.lgt per domain")
        ->take_all();
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
    cmd->add_option("--hellaswag", o->tasks.hellaswag,
                    "also score this HellaSwag task file (llama-perplexity's format: 6 lines a task)");
    cmd->add_option("--winogrande", o->tasks.winogrande,
                    "also score this Winogrande task file (llama-perplexity's CSV)");
    cmd->add_option("--multiple-choice", o->tasks.multiple_choice,
                    "also score this multiple-choice task file (llama-perplexity's binary format)");
    cmd->add_option("--tasks", o->tasks.limit,
                    "score this many tasks of each file, picked as llama-perplexity picks them (0: all; "
                    "llama-perplexity's --hellaswag-tasks defaults to 400)")
        ->check(CLI::Range(0, 1 << 30));
    auto * prompts = cmd->add_option(
        "--prompts", o->generation.prompts,
        "prompts to continue greedily with every model (JSONL prompt/response, text or messages, or .txt one per "
        "line): agreement with the base's continuation, match rate, degeneration rate, distinct-2");
    cmd->add_option("--gen-tokens", o->generation.n_tokens,
                    strfmt("tokens generated per prompt, less than -c. Degeneration: a continuation of at least %zu "
                           "tokens whose last half repeats itself, period p at most half that tail, on %zu %% of its "
                           "tokens (token i == token i-p)",
                           k_loop_min_tokens, k_loop_min_percent))
        ->needs(prompts)
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--chat-template", o->generation.chat_template,
                    "template for 'messages' prompts: a llama.cpp built-in name or a file (default: the model's)")
        ->needs(prompts);
    add_llama_flags(*cmd, *o);
    cmd->add_option("-o,--output", o->output, "also write the table: JSON for .json, CSV for .csv, else text");
    cmd->add_flag("!--no-progress", o->progress, "no progress line on stderr");
    cmd->callback([o, args, &run]() {
        o->domains = resolve_domains(args->data, args->base_logits);
        check_eval_options(*o);
        run = [o]() {
            const auto rows = run_eval(*o);
            std::fputs(eval_table(rows, o->convention).c_str(), stdout);
            if (!o->output.empty()) {
                write_file_atomic(o->output, eval_output_for(o->output, rows, o->convention));
            }
        };
    });
}

}  // namespace reap::cli
