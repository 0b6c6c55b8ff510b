// Real tokenizers for synthetic models: the tokenizer.* keys of a vocab-only GGUF (llama.cpp's
// models/ggml-vocab-*.gguf: qwen2, llama-bpe, deepseek-llm, gpt-2, phi-3, ...).
#pragma once

#include "gguf.h"

#include <cstdint>
#include <string>

namespace reap::synth {

// The folder of llama.cpp's vocab GGUFs: $REAP_LLAMA_SOURCE/models, else the llama.cpp source
// tree found at build time; "" when neither exists.
std::string vocab_dir();

// `name_or_file`: a GGUF file, or NAME for <vocab_dir>/ggml-vocab-NAME.gguf. Throws reap::Error
// naming what is missing.
std::string find_vocab(const std::string & name_or_file);

// Copies every tokenizer.* key (tokens, merges or scores, token types, special ids,
// pre-tokenizer, chat template) of the vocab GGUF into `ctx`; returns the vocabulary size.
uint32_t import_vocab(gguf_context * ctx, const std::string & name_or_file);

}  // namespace reap::synth
