// A small SentencePiece-style ("llama") vocabulary with byte fallback for synthetic models.
#pragma once

#include "gguf.h"

#include <cstdint>

namespace reap::synth {

// Writes tokenizer.* keys (tokens, scores, types, special ids, a chatml chat template) into
// `ctx` and returns the vocabulary size. Layout: <unk> <s> </s> <|im_start|> <|im_end|>, the
// 256 byte tokens <0x00>..<0xFF>, "▁" and the printable ASCII characters, then `n_merges` pieces
// learned by BPE on a built-in English/code sample (score = -rank, so llama.cpp's SPM
// tokenizer reproduces the merges). Any UTF-8 (or invalid) text tokenizes through the bytes.
uint32_t add_vocab(gguf_context * ctx, int n_merges = 256);

}  // namespace reap::synth
