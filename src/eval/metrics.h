// The numbers `reap eval` reports for one model: per predicted position the KL divergence
// base -> model, the model's negative log-likelihood of the next token and top-1 agreement;
// over all positions PPL, mean and 99th-percentile KL, agreement rate, speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace reap {

struct EvalRow {
    std::string model;
    uint64_t    file_size = 0;
    double      ppl = 0, kl_mean = 0, kl_p99 = 0, top1 = 0, tokens_per_s = 0;
    uint64_t    n_scored = 0;
    bool        second_half = false;  // scored only each window's second half (llama-perplexity)
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

// The same from a stored base row (eval/logprob_row.h): KL as sum p log p minus the cross term
// over the entries the row keeps, their probabilities renormalised to 1.
struct BaseRow;
TokenComparison compare_row(const BaseRow & base, const float * model_logprobs, size_t n_vocab, int32_t next);

// Sums the comparisons of one model over every scored position.
class ScoreSum {
public:
    void add(const TokenComparison & c);
    // The row for `model`: `seconds` spent decoding `decoded` tokens (0, 0: no speed).
    EvalRow row(const std::string & model, uint64_t file_size, double seconds, uint64_t decoded);

private:
    double              nll_ = 0;
    std::vector<double> kls_;
    uint64_t            agree_ = 0;
};

}  // namespace reap
