// `reap eval --prompts FILE --gen-tokens N`: greedy continuations of the same prompts by the base
// and by every pruned model, scored against the base's (eval/generation_score.h). The prompts
// file takes the calibration formats (profile/calibration.h: load_prompt_samples): JSONL `prompt`
// with or without its `response` (the prompt and its newline), `text`, `messages` (rendered with
// the chat template, a final assistant message left out and the assistant turn left open), or
// plain text, one prompt per non-blank line. A malformed line is fatal and named by file and line.
// Text shown or written (the prompts' ends, the continuations) is valid UTF-8: a character that
// --gen-tokens cuts (or any invalid byte a byte-fallback vocabulary produces) is U+FFFD.
#pragma once

#include "eval/generation_score.h"
#include "llama/llama_runtime.h"

#include "llama.h"

#include <string>
#include <vector>

namespace reap {

struct GenerationOptions {
    std::string prompts;         // --prompts FILE (empty: no generation)
    int         n_tokens = 64;   // --gen-tokens: tokens generated per prompt, at most
    std::string chat_template;   // --chat-template (profile/samples.h: chat_template)
    size_t      n_examples = 3;  // continuations shown per model
};

// The fewest tokens -c leaves a prompt beside --gen-tokens: below it a prompt would be cut to a
// handful of tokens, and the continuations compared would continue almost nothing.
inline constexpr int k_min_prompt_tokens = 8;

// Why `n_tokens` to generate in a context of `n_ctx` leave too little room for the prompt (fewer
// than k_min_prompt_tokens), naming -c and --gen-tokens; "" when they leave enough. A usage error
// when -c was given, a runtime one when the model's trained context decided it.
std::string prompt_budget_problem(int n_ctx, int n_tokens);

// The same as a usage error when the prompts are given and -c is (`n_ctx` > 0): the option
// check of eval and sweep. With -c from the model, check_eval_inputs refuses it at run time.
void check_prompt_budget_option(const GenerationOptions & opts, int n_ctx);

struct Prompt {
    std::vector<llama_token> tokens;
    std::string              shown;        // the prompt as the table shows it (valid UTF-8): a cut one's kept tokens
    bool                     cut = false;  // longer than the room left: only its last tokens are kept
};

// The prompts of `opts.prompts`, tokenized with `model`'s vocabulary (a vocabulary-only model
// will do). A prompt longer than `max_tokens` keeps its last tokens (and its BOS), so that the
// continuation fits the context, and is marked `cut`.
std::vector<Prompt> load_prompts(const llama_model * model, const GenerationOptions & opts, int max_tokens);

// One note on stderr when some of `prompts` were cut to their last `max_tokens` tokens.
void note_cut_prompts(const std::vector<Prompt> & prompts, int max_tokens);

// Greedy (argmax, first of ties) continuations of every prompt by the model in `m`, each up to
// `n_tokens` tokens or an end-of-generation token. The context must hold prompt + n_tokens.
std::vector<Continuation> greedy_continuations(const LlamaRuntime & m, const std::vector<Prompt> & prompts,
                                               int n_tokens, const std::string & what, bool progress);

// `mine` scored against the base's continuations, with the first n_examples shown as text.
GenerationScore compare_continuations(const llama_vocab * vocab, const std::vector<Prompt> & prompts,
                                      const std::vector<Continuation> & base, const std::vector<Continuation> & mine,
                                      const GenerationOptions & opts);

// Text one line can show: newlines and tabs as \n and \t, other control bytes as '?', at most
// `max_chars` bytes from the end (keep_end) or from the start, cut where a UTF-8 character starts.
std::string one_line(const std::string & text, size_t max_chars, bool keep_end);

}  // namespace reap
