// Scores task files (eval/task_files.h) on a model by llama-perplexity's rules, so that the
// accuracy equals its own on the same file and model:
// - hellaswag, multiple-choice: each ending is tokenized as "context ending" (with BOS when the
//   model adds one); the tokens all endings share are decoded once for every ending's sequence.
//   An ending scores the mean log-probability of its tokens after the shared prefix (the first
//   from the shared prefix's last position); the best-scoring ending is the model's answer
//   (hellaswag sums in double, multiple-choice in float, as llama-perplexity does).
// - winogrande: "first choice second" for each choice; when both sentences go on for more than 3
//   tokens after their shared prefix, only the tokens after "first choice" score (the partial
//   evaluation), else every token after the shared prefix; the last token is left out when more
//   than one would score. The choice with the higher mean log-probability is the answer. Where
//   llama-perplexity reads the second sentence's first log-probability from the wrong row
//   (a known quirk there, when the partial evaluation is off) reap reads the same row, so the scores agree.
// Tasks are packed into decode calls as llama-perplexity packs them (a context of n_parallel
// times -c tokens shared by all sequences, at most 4 * 32 hellaswag/multiple-choice sequences or
// 2 * 128 winogrande ones per call), so that llama.cpp computes the same logits.
#pragma once

#include "eval/task_files.h"
#include "llama/llama_flags.h"

#include <string>
#include <vector>

namespace reap {

struct TaskRunOptions : LlamaFlags {
    int  n_ctx    = 512;  // -c: per sequence slot; the context holds n_parallel of them
    int  n_batch  = 0;    // tokens per llama_decode call (0: llama-perplexity's 2048), capped at the context
    int  n_ubatch = 0;    // 0: 512, llama.cpp's default
    bool progress = true;
};

// Sequence slots llama-perplexity needs for `sets` (its -np): 4, or the most answers of a task.
int task_parallel(const std::vector<TaskSet> & sets);

// Tokenizes every task of `sets` with `vocab` (a vocabulary-only model will do) and fails, naming
// the file and task, on one that cannot be scored at -c `n_ctx`: longer than the context the
// tasks are scored in, or whose choices do not differ. What score_task_sets would refuse, found
// before any model runs.
void check_task_sets(const llama_vocab * vocab, const std::vector<TaskSet> & sets, int n_ctx);

// Loads `model` once and scores each set on it, in order.
std::vector<TaskScore> score_task_sets(const std::string & model, const TaskRunOptions & opts,
                                       const std::vector<TaskSet> & sets);

}  // namespace reap
