// `reap eval` (SPEC §7): how close pruned models stay to the base model on held-out text.
// The text is cut into windows of the context size; every position of a window predicts the
// next token. The base model's log-probabilities are written once to a logits file, then each
// pruned model is run over the same windows and compared with them: perplexity, KL divergence
// base -> model (mean and 99th percentile over tokens), top-1 agreement, size and speed.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

struct EvalOptions {
    std::string              base;         // base model (may be omitted when base_logits exists)
    std::vector<std::string> pruned;       // models to compare with the base
    std::string              data;         // held-out text file
    std::string              base_logits;  // reuse if it exists (and matches), else write it here
    int                      n_ctx        = 512;
    int                      max_chunks   = -1;  // windows to use (-1: all)
    int                      n_threads    = 0;
    int                      n_gpu_layers = 0;
    bool                     progress     = true;
};

struct EvalRow {
    std::string model;
    uint64_t    file_size = 0;
    double      ppl = 0, kl_mean = 0, kl_p99 = 0, top1 = 0, tokens_per_s = 0;
    uint64_t    n_scored = 0;
};

// Metrics of one predicted position: the base's log-probabilities, the model's raw logits,
// and the token that actually came next.
struct TokenComparison {
    double kl;           // sum_v p_base(v) (log p_base(v) - log p_model(v))
    double nll;          // -log p_model(next)
    bool   top1_agrees;  // argmax of base == argmax of model
};
void            log_softmax(const float * logits, size_t n, std::vector<float> & out);
TokenComparison compare_token(const float * base_logprobs, const float * model_logprobs, size_t n_vocab, int32_t next);

std::vector<EvalRow> run_eval(const EvalOptions & opts);

std::string    eval_table(const std::vector<EvalRow> & rows);  // for the terminal
nlohmann::json eval_json(const std::vector<EvalRow> & rows);
std::string    eval_csv(const std::vector<EvalRow> & rows);

}  // namespace reap
