// Per-architecture shapes and hyper-parameters of a synthetic model, as llama.cpp's loader
// for that architecture expects them (see docs/ARCHITECTURE.md for the sources).
#pragma once

#include "synth/synth.h"

#include "gguf.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap::synth {

// How a tensor's values are drawn.
enum class Init {
    normal,       // N(0, scale^2)
    ones,         // norm weights
    zeros,        // sinks, conv bias
    embedding,    // N(0, scale^2) with a constant +1 in residual dimension 0 (the routing anchor)
    ssm_a,        // uniform in [-1, -0.1]: Mamba state decay must be negative
    ssm_dt_bias,  // softplus^-1 of small time steps
};

struct TensorSpec {
    std::string          name;
    std::vector<int64_t> ne;
    Init                 init   = Init::normal;
    float                scale  = 0.0f;
    bool                 matrix = false;  // a matmul weight: stored in the requested type
    bool writes_residual        = false;  // output dimension (ne[1], or ne[0] for biases) is the residual stream
    bool reads_residual         = false;  // input dimension ne[0] is the (normed) residual stream
};

struct ArchSpec {
    std::vector<TensorSpec> tensors;
    std::vector<int>        moe_layers;
};

// Writes the architecture's keys into `ctx` (vocabulary excluded) and returns its tensors.
ArchSpec build_arch(const Options & o, uint32_t n_vocab, gguf_context * ctx);

}  // namespace reap::synth
