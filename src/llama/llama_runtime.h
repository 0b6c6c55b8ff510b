// The llama.cpp model and context that profile and eval run on: one options struct (the
// context sizes -c, -b, -ub, -np and the shared runtime flags of llama/llama_flags.h) and one
// function that loads the model and creates its context from them.
#pragma once

#include "llama/llama_flags.h"
#include "llama/llama_util.h"

#include "llama.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

struct LlamaRuntimeOptions : LlamaFlags {
    uint32_t n_ctx      = 512;    // KV cache size in tokens
    uint32_t n_batch    = 512;    // tokens per llama_decode call
    uint32_t n_ubatch   = 512;    // tokens per micro-batch
    uint32_t n_seq_max  = 1;      // sequences decoded together
    bool     kv_unified = false;  // one KV buffer shared by all sequences
    // Sees every graph node during a decode (the profiler's statistics collector).
    ggml_backend_sched_eval_callback cb_eval           = nullptr;
    void *                           cb_eval_user_data = nullptr;
};

struct LlamaRuntime {
    LlamaModelPtr   model;
    LlamaContextPtr ctx;

    const llama_vocab * vocab() const { return llama_model_get_vocab(model.get()); }
    llama_memory_t      memory() const { return llama_get_memory(ctx.get()); }
};

// The files of a GGUF model named by any one of them: a split set's parts in order (the first
// is the one llama.cpp loads), or the single file; `size` is their total.
struct ModelFiles {
    std::vector<std::string> parts;
    uint64_t                 size = 0;
    const std::string &      first() const { return parts.front(); }
};
ModelFiles model_files(const std::string & path);

// Loads the model `model_path` (any part of a split set) and creates a context; one-line
// errors naming the file.
LlamaRuntime open_llama(const std::string & model_path, const LlamaRuntimeOptions & opts);

// The vocabulary (and metadata: the chat template) of the model `model_path`, no weights: what
// tokenizing inputs needs before any model runs. One-line errors naming the file.
LlamaModelPtr open_vocab(const std::string & model_path);

}  // namespace reap
