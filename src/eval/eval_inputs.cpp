#include "eval/eval_inputs.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "eval/task_scoring.h"
#include "llama/context_size.h"
#include "llama/llama_runtime.h"

#include <fstream>
#include <sstream>

namespace reap {

namespace {

std::string read_heldout_text(const EvalDomain & d) {
    std::ifstream in(d.file, std::ios::binary);
    if (!in) fail("%s: cannot open the held-out text", d.file.c_str());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail("%s: the held-out text is empty", d.file.c_str());
    return text;
}

// Refuses, before any work, an output (the table, a base-logits file to write) that is one of
// the inputs: the models' files, the held-out texts, the prompts, the task files, a base-logits
// file to read.
void refuse_outputs_over_inputs(const EvalOptions & o, const std::vector<bool> & reuse) {
    std::vector<std::string> inputs;
    for (const auto & d : o.domains)
        inputs.push_back(d.file);
    if (!o.generation.prompts.empty()) inputs.push_back(o.generation.prompts);
    for (const std::string & f : {o.tasks.hellaswag, o.tasks.winogrande, o.tasks.multiple_choice})
        if (!f.empty()) inputs.push_back(f);
    for (const std::string & m : o.pruned) {
        const auto parts = model_files(m).parts;
        inputs.insert(inputs.end(), parts.begin(), parts.end());
    }
    if (!o.base.empty()) {
        const auto parts = model_files(o.base).parts;
        inputs.insert(inputs.end(), parts.begin(), parts.end());
    }
    for (size_t i = 0; i < o.domains.size(); i++) {
        if (!reuse[i] && !o.domains[i].base_logits.empty()) refuse_output_over_inputs(o.domains[i].base_logits, inputs);
    }
    for (const auto & d : o.domains) {
        // read, or written by this run: either way not the table, nor another domain's logits to write
        if (!d.base_logits.empty()) inputs.push_back(d.base_logits);
    }
    if (!o.output.empty()) {
        refuse_output_over_inputs(o.output, inputs);
    }
}

// What needs the base's vocabulary: the texts whose base logits are to be written cut into
// windows, the tasks and the prompts tokenized.
void check_with_vocabulary(EvalInputs & in) {
    const EvalOptions & o     = in.options;
    const LlamaModelPtr model = open_vocab(o.base);
    const llama_vocab * vocab = llama_model_get_vocab(model.get());
    for (size_t i = 0; i < o.domains.size(); i++)
        if (!in.reuse[i]) (void) eval_windows(vocab, in.texts[i], o, o.domains[i]);
    check_task_sets(vocab, in.task_sets, o.n_ctx);
    if (!o.generation.prompts.empty()) {
        const int room = o.n_ctx - o.generation.n_tokens;
        in.prompts     = load_prompts(model.get(), o.generation, room);
        note_cut_prompts(in.prompts, room);
    }
}

}  // namespace

std::vector<std::vector<llama_token>> eval_windows(const llama_vocab * vocab, const std::string & text,
                                                   const EvalOptions & o, const EvalDomain & d) {
    if (o.convention == PplConvention::second_half) {
        auto out = perplexity_windows(vocab, text, o.n_ctx, o.max_chunks);
        if (out.empty()) {
            fail(
                "%s: too little text to score with --ppl-convention second-half at -c %d (it scores full windows "
                "only, as llama-perplexity)",
                d.file.c_str(), o.n_ctx);
        }
        return out;
    }
    auto out = text_windows(vocab, text, o.n_ctx, o.max_chunks);
    if (out.empty()) fail("%s: not enough text to evaluate (need at least 2 tokens)", d.file.c_str());
    return out;
}

EvalInputs check_eval_inputs(const EvalOptions & given) {
    EvalInputs in;
    bool       all_reused = true;
    for (const auto & d : given.domains) {
        in.reuse.push_back(!d.base_logits.empty() && file_size(d.base_logits) > 0);
        all_reused = all_reused && in.reuse.back();
    }
    check_eval_options(given);
    if (given.base.empty() && !all_reused) fail("give -m BASE: a --base-logits file is missing or empty");
    in.options        = given;
    EvalOptions & o   = in.options;
    const bool    gen = !o.generation.prompts.empty();
    o.n_ctx           = resolve_ctx_size(given.n_ctx, given.base.empty() ? given.pruned.front() : given.base);
    if (o.n_ctx < 8) fail("a trained context of %d tokens is too short to evaluate", o.n_ctx);
    const std::string budget = gen ? prompt_budget_problem(o.n_ctx, o.generation.n_tokens) : "";
    if (!budget.empty()) fail("%s (the model's trained context)", budget.c_str());
    for (const auto & d : o.domains)
        in.texts.push_back(read_heldout_text(d));
    refuse_outputs_over_inputs(o, in.reuse);
    if (o.tasks.any() && o.base.empty()) fail("the task files are scored on the base model too: give -m BASE");
    in.task_sets = read_task_files(o.tasks);
    if (!o.base.empty()) check_with_vocabulary(in);
    return in;
}

}  // namespace reap
