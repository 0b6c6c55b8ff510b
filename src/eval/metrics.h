// The numbers `reap eval` reports for one model: per predicted position the KL divergence
// base -> model, the model's negative log-likelihood of the next token and top-1 agreement;
// over all positions PPL, mean and 99th-percentile KL, agreement rate, speed.
#pragma once

#include "eval/generation_score.h"
#include "eval/task_files.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reap {

// Which positions of a window are scored (PPL, KL, top-1). `all`: every position that predicts
// a next token. `second_half`: llama-perplexity's convention, positions n_ctx/2 .. n_ctx-2 of a
// window, each of which sees at least half a window of context (its PPL is lower).
enum class PplConvention { all, second_half };
const char * ppl_convention_name(PplConvention c);  // "all", "second-half" (the option's values)
uint32_t     first_scored_position(PplConvention c, uint32_t n_ctx);

// One held-out text's numbers for a model (`--data NAME=FILE`); ppl_ratio is the model's PPL over
// the base's on the same text.
struct DomainScore {
    std::string name;
    double      ppl = 0, kl_mean = 0, kl_p99 = 0, top1 = 0, ppl_ratio = 0;
    uint64_t    n_scored = 0;
};

struct EvalRow {
    std::string path;  // the model as given (for a base known only from its logits file: its name)
    uint64_t    file_size = 0;
    double      ppl = 0, kl_mean = 0, kl_p99 = 0, top1 = 0;  // on the first --data
    double      tokens_per_s = 0;
    bool        timed        = false;  // false: tokens_per_s was not measured (base read from a file)
    uint64_t    n_scored     = 0;

    std::vector<TaskScore>         tasks;       // one per task file asked for (eval/task_scoring.h)
    std::vector<DomainScore>       domains;     // every --data, in order (the first one included)
    std::optional<GenerationScore> generation;  // with --prompts
};

// Metrics of one predicted position: the base's log-probabilities, the model's
// log-probabilities, and the token that actually came next.
struct TokenComparison {
    double kl;           // sum_v p_base(v) (log p_base(v) - log p_model(v))
    double nll;          // -log p_model(next)
    bool   top1_agrees;  // argmax of base == argmax of model
};
void            log_softmax(const float * logits, size_t n, std::vector<float> & out);
TokenComparison compare_token(const float * base_logprobs, const float * model_logprobs, size_t n_vocab, int32_t next);

// Sums the comparisons of one model over every scored position.
class ScoreSum {
public:
    void add(const TokenComparison & c);
    // The row for `path`: `seconds` spent decoding `decoded` tokens (0, 0: no speed). At least
    // one comparison must have been added.
    EvalRow row(const std::string & path, uint64_t file_size, double seconds, uint64_t decoded);

private:
    double              nll_ = 0;
    std::vector<double> kls_;
    uint64_t            agree_ = 0;
};

}  // namespace reap
