// Tensor layouts decided by llama.cpp itself: llama_model_init_from_user builds a model of any
// architecture from its hyperparameter keys and names every tensor; synth records the names
// and shapes, then writes the data itself (planted structure, quantized types, seeded bytes).
#pragma once

#include "synth/synth_arch.h"

#include "gguf.h"

namespace reap::synth {

// Asks llama.cpp to build the model described by `meta` (keys only: every tensor F32) and
// returns its tensors in creation order, each with how synth fills it; MoE layers are those
// with a router (blk.<il>.ffn_gate_inp.weight). The tensors are allocated but never written,
// so the memory is only reserved. Throws reap::Error when llama.cpp refuses the keys.
ArchSpec discover_arch(gguf_context * meta, int64_t n_embd, int n_layer);

// How synth fills a tensor llama.cpp created: norms one, matmul weights normal with 1/sqrt(fan_in),
// routers F32 and planted, recurrent-state parameters in their valid ranges.
TensorSpec spec_for_tensor(const std::string & name, const std::vector<int64_t> & ne, int64_t n_embd, int n_layer);

}  // namespace reap::synth
