// Thin RAII and tokenization helpers over llama.h, shared by profile and eval.
#pragma once

#include "llama.h"

#include <memory>
#include <string>
#include <vector>

namespace reap {

struct LlamaModelDeleter {
    void operator()(llama_model * m) const { llama_model_free(m); }
};
struct LlamaContextDeleter {
    void operator()(llama_context * c) const { llama_free(c); }
};
using LlamaModelPtr   = std::unique_ptr<llama_model, LlamaModelDeleter>;
using LlamaContextPtr = std::unique_ptr<llama_context, LlamaContextDeleter>;

// Owns a llama_batch (llama_batch_init / llama_batch_free).
struct LlamaBatch {
    llama_batch b;
    explicit LlamaBatch(int32_t n_tokens_max) : b(llama_batch_init(n_tokens_max, 0, 1)) {}
    ~LlamaBatch() { llama_batch_free(b); }
    LlamaBatch(const LlamaBatch &)             = delete;
    LlamaBatch & operator=(const LlamaBatch &) = delete;
};

// Appends tokens[from, from+len) at positions from.. to sequence `seq`, every token an output.
// Why every token: llama.cpp keeps only output rows before the last layer's FFN, so without it
// the last MoE layer would see one token per sequence (profile), and eval needs every position.
void batch_add_outputs(llama_batch & batch, const std::vector<llama_token> & tokens, size_t from, size_t len,
                       llama_seq_id seq);

// llama_tokenize with a buffer that grows as needed; throws on failure.
std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool add_special,
                                  bool parse_special);

// Plain text cut into windows of n_ctx tokens: each window starts with BOS when the vocabulary
// adds one, then continues the text; windows shorter than 2 tokens are dropped.
// max_windows < 0: all.
std::vector<std::vector<llama_token>> text_windows(const llama_vocab * vocab, const std::string & text, int n_ctx,
                                                   long max_windows = -1);

// llama-perplexity's windows of a text file's contents: its -f drops one trailing '\n'; the text
// is tokenized with BOS, cut into as many full windows of n_ctx tokens as it holds (the rest is
// not scored), and each window's first token is replaced by BOS when the vocabulary adds one.
// max_windows < 0: all.
std::vector<std::vector<llama_token>> perplexity_windows(const llama_vocab * vocab, const std::string & file_text,
                                                         int n_ctx, long max_windows = -1);

}  // namespace reap
