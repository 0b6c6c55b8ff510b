// Which tensors of a Hugging Face checkpoint carry a routed-expert axis, found by name pattern
// and checked by shape (the expert count from config.json):
//   - one tensor per expert: "<block>.experts.<j>.<rest>" (Qwen-MoE, DeepSeek, GLM: gate/up/down_proj;
//     Mixtral: w1/w2/w3; NemotronH: up/down_proj), every companion of the expert included
//     (weight_scale_inv, biases, ...);
//   - fused tensors with the expert axis first: "<block>.experts.gate_up_proj", "down_proj", their
//     "_bias", MXFP4 "_blocks"/"_scales" (transformers' current layout, gpt-oss);
//   - the router: "<block>.gate.*" / "<block>.router.*" with the expert axis first (rows, bias,
//     e_score_correction_bias).
// Shared experts and everything else are copied. A tensor inside an MoE block that is none of
// these but has an expert-sized dimension (or "expert" in its name) is refused, never guessed.
#pragma once

#include "hf/hf_checkpoint.h"
#include "hf/hf_config.h"
#include "moe/moe_shape.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

enum class HfRole {
    other,   // copied whole
    expert,  // belongs to one expert: kept (renumbered) or dropped whole
    fused,   // expert axis first: sliced
    router,  // router rows / bias / selection bias, expert axis first: sliced
};

struct HfTensorRole {
    HfRole      role   = HfRole::other;
    int         layer  = -1;
    uint32_t    expert = 0;       // HfRole::expert: its id
    std::string prefix;           // HfRole::expert: name up to and including "experts."
    std::string suffix;           // HfRole::expert: name after "experts.<j>"
    uint64_t    slice_bytes = 0;  // fused/router: bytes of one expert's slice; expert: the tensor
};

struct HfMoeLayer {
    int         index;
    std::string block;  // "model.layers.3.mlp"
    bool        nextn         = false;
    bool        shared_expert = false;
    std::string router;  // name of the router rows tensor ("" when none)
};

struct HfLayout {
    HfMoeConfig               config;
    std::vector<HfTensorRole> roles;  // parallel to HfCheckpoint::tensors
    std::vector<HfMoeLayer>   layers;
    MoeShape                  shape;  // with the router row norms (moe_shape.h)

    uint64_t expert_bytes() const;  // all routed-expert data
};

// Analyses `c`; throws reap::Error naming the file for anything it cannot place.
HfLayout analyze_hf(const HfCheckpoint & c);

// The L2 norm of each row of a 2-D [rows, cols] tensor in F32, F16 or BF16 (empty for others).
std::vector<float> hf_row_norms(const SafetensorsFile & f, const StTensor & t);

}  // namespace reap
