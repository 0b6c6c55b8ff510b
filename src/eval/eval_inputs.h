// What `reap eval` reads besides the models, read and checked before any model runs: the option
// checks that need the model's context, the held-out texts, the task files (tokenized: a task that
// does not fit is refused), the prompts (tokenized), the outputs that would overwrite an input.
// Only the base model's vocabulary is loaded, so that a bad input fails in seconds, not after
// every model was evaluated; the sweep calls it before it profiles.
#pragma once

#include "eval/evaluator.h"
#include "eval/generation.h"
#include "eval/task_files.h"
#include "llama/llama_util.h"

#include <string>
#include <vector>

namespace reap {

struct EvalInputs {
    EvalOptions              options;    // as given, -c resolved
    std::vector<bool>        reuse;      // per domain: its --base-logits file exists and is read
    std::vector<std::string> texts;      // per domain: the held-out text
    std::vector<TaskSet>     task_sets;  // the task files, in the order eval scores them
    std::vector<Prompt>      prompts;    // tokenized with the base's vocabulary (none without --prompts)
};

// Checks `given` (usage errors: exit 2) and reads and checks every input (runtime errors naming
// the file: exit 1), loading no model's weights: the base's vocabulary only, when -m is given.
// Prints the note on cut prompts (eval/generation.h: note_cut_prompts).
EvalInputs check_eval_inputs(const EvalOptions & given);

// The windows domain `d`'s text is cut into by the convention of `o` (second-half takes
// llama-perplexity's: full windows only, each one's first token BOS); fails when there are none.
std::vector<std::vector<llama_token>> eval_windows(const llama_vocab * vocab, const std::string & text,
                                                   const EvalOptions & o, const EvalDomain & d);

}  // namespace reap
