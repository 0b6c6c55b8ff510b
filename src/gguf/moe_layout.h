// Which layers of a GGUF model are MoE, which tensors carry a routed-expert axis, and what
// the file is made of. Shared by inspect, profile and prune (what it would weigh with fewer
// experts: gguf_pruner's pruned_file_size, the one owner).
#pragma once

#include "gguf/gguf_file.h"
#include "moe/moe_shape.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// How a tensor relates to the routed experts.
enum class ExpertRole {
    expert_weights,  // ffn_{gate,up,down,gate_up}_exps.{weight,bias,scale,input_scale}
    router,          // ffn_gate_inp.{weight,bias}: one row per expert
    selection_bias,  // exp_probs_b[.bias], exp_probs_b_vl[.bias]: one value per expert
    expert_ids,      // ffn_gate_tid2eid: values are expert ids (hash routing)
    chunk_weights,   // ffn_{gate,up,down}_chexps.weight: one slice per adjugate expert (GroveMoE)
    unknown,         // an *_exps / *_chexps name this tool does not know
};

const char * expert_role_name(ExpertRole r);

struct ExpertTensor {
    const TensorInfo * info;
    int                layer;
    std::string        suffix;  // name after "blk.<il>.", e.g. "ffn_up_exps.weight"
    ExpertRole         role;
    uint64_t           slice_bytes;  // bytes of one expert's (chunk's) slice (0 for expert_ids/unknown)
};

enum class LayerKind { moe, dense, other };  // other: no FFN (attention-only, Mamba, ...)

struct LayerInfo {
    int                 index;
    LayerKind           kind;
    uint32_t            n_expert_used;      // 0 for non-MoE layers
    bool                has_shared_expert;  // *_shexp tensors present
    bool                is_nextn;           // an MTP / next-token-prediction block (the last ones)
    std::vector<size_t> expert_tensors;     // indices into MoeLayout::expert_tensors
};

struct MoeLayout {
    std::string           arch;
    uint32_t              n_layer  = 0;
    uint32_t              n_expert = 0;
    std::vector<uint32_t> n_expert_used;  // per layer, as the file says (scalar expanded)
    bool                  n_expert_used_is_array = false;
    uint32_t              n_expert_groups        = 0;  // 0 or 1: no grouped routing
    uint32_t              n_group_used           = 0;
    uint32_t              n_expert_shared        = 0;
    uint32_t              n_nextn_layers         = 0;
    uint32_t              experts_per_chunk      = 0;  // GroveMoE's experts_per_group, with *_chexps only
    std::string           expert_ff_key;               // "{arch}.expert_feed_forward_length" if present
    uint64_t              file_size = 0;
    uint32_t              alignment = 32;

    std::vector<LayerInfo>    layers;
    std::vector<ExpertTensor> expert_tensors;

    std::vector<int> moe_layer_indices() const;
    uint32_t         max_expert_used() const;
    uint64_t         expert_bytes() const;  // bytes of all routed-expert (and adjugate-expert) slices
    // The format-free part: what planning and the same-model checks need.
    MoeShape shape() const;
};

// llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS: its loader aborts on more.
inline constexpr uint32_t k_llama_max_layers  = 512;
inline constexpr uint32_t k_llama_max_experts = 1024;

// Analyses `f`. Throws reap::Error when the file has no usable MoE structure (no expert_count,
// no expert tensors, an expert tensor whose outer dimension is not n_expert, a block-quantized
// 1-D expert tensor) or hyperparameters llama.cpp would abort on (check_llama_limits).
MoeLayout analyze_moe(const GgufFile & f);

// The hyperparameter rules llama.cpp's loader asserts on (it aborts rather than refusing), for
// `m` with `n_expert` experts (the file's, or a pruned count): next-n layers within the layers,
// 1 to n_expert experts used per token, fewer expert groups than experts, and with groups:
// experts divisible into them and 1 to groups-1 groups used. Throws reap::Error naming `what`.
void check_llama_limits(const MoeLayout & m, uint32_t n_expert, const std::string & what);

// The same rules for any model llama.cpp is about to load (with experts or without): call it
// before llama_model_load_from_file. Throws reap::Error naming the file.
void check_llama_loadable(const GgufFile & f);

// The architecture key prefix: "{arch}." followed by `key`.
std::string arch_key(const GgufFile & f, const char * key);

}  // namespace reap
