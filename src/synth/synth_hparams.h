// Hyperparameter keys for models that llama.cpp's own model builder lays out
// (llama_model_init_from_user): every MoE architecture of the pinned llama.cpp.
#pragma once

#include "synth/synth.h"

#include "gguf.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap::synth {

// The MoE architectures of llama.cpp's tests/test-llama-archs.cpp (moe_mandatory() and
// moe_implemented()), by GGUF general.architecture name.
const std::vector<std::string> & llama_builder_architectures();

// Attention heads the builder gives `arch` when Options::n_head is 0.
int default_head_count(const std::string & arch);

// Writes `o.arch`'s hyperparameter keys (vocabulary excluded) into `ctx`: the shape of `o`
// plus the architecture's own keys, as llama.cpp's loader for it reads them.
void add_builder_hparams(gguf_context * ctx, const Options & o, uint32_t n_vocab);

}  // namespace reap::synth
