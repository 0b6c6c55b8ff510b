// Thin RAII and tokenization helpers over llama.h, shared by profile and eval.
#pragma once

#include "llama.h"

#include <memory>
#include <string>
#include <vector>

namespace reap {

struct LlamaModelDeleter { void operator()(llama_model * m) const { llama_model_free(m); } };
struct LlamaContextDeleter { void operator()(llama_context * c) const { llama_free(c); } };
using LlamaModelPtr   = std::unique_ptr<llama_model, LlamaModelDeleter>;
using LlamaContextPtr = std::unique_ptr<llama_context, LlamaContextDeleter>;

// llama_tokenize with a buffer that grows as needed; throws on failure.
std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool add_special, bool parse_special);

// Plain text cut into windows of n_ctx tokens: each window starts with BOS when the vocabulary
// adds one, then continues the text; windows shorter than 2 tokens are dropped.
// max_windows < 0: all.
std::vector<std::vector<llama_token>> text_windows(const llama_vocab * vocab, const std::string & text, int n_ctx,
                                                   long max_windows = -1);

}  // namespace reap
