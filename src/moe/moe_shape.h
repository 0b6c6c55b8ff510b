// The shape of a model's routed experts, independent of the file format: what planning, the
// expert budget and the same-model checks need, and nothing about tensors or bytes. A GGUF
// model gives one through MoeLayout::shape(); a stats file records one in its "_meta".
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

// Per regular MoE layer, the L2 norm of each expert's router row (moe/router_fingerprint.h).
using RouterNorms = std::map<int, std::vector<float>>;

struct MoeShape {
    std::string arch;                 // llama.cpp's architecture name ("qwen3moe", "deepseek2", ...)
    uint32_t    n_layer         = 0;  // all blocks, MoE or not
    uint32_t    n_expert        = 0;  // routed experts per MoE layer
    uint32_t    n_expert_used   = 0;  // experts per token (the largest, when it varies by layer)
    uint32_t    n_expert_groups = 0;  // 0 or 1: no grouped routing
    uint32_t    n_group_used    = 0;  // groups a token may route to
    // GroveMoE: routed experts that share one adjugate ("chunk") expert, the *_chexps tensors
    // ({arch}.experts_per_group; expert j belongs to chunk j / experts_per_chunk). 0: none.
    uint32_t         experts_per_chunk = 0;
    std::vector<int> moe_layers;          // regular MoE layers (the ones with statistics), ascending
    std::vector<int> nextn_layers;        // MoE layers of next-token-prediction (MTP) blocks, ascending
    std::string      router_fingerprint;  // identity of the weights (moe/router_fingerprint.h); "" unknown
    RouterNorms      router_norms;        // identity across formats and expert orders; empty: unknown

    // Groups of experts that must keep the same number each (1 without grouped routing).
    uint32_t groups() const { return n_expert_groups > 1 ? n_expert_groups : 1; }
    uint32_t n_chunk() const { return experts_per_chunk > 0 ? n_expert / experts_per_chunk : 0; }
    bool     is_moe_layer(int il) const {
            return std::binary_search(moe_layers.begin(), moe_layers.end(), il) ||
                   std::binary_search(nextn_layers.begin(), nextn_layers.end(), il);
    }
    // Every MoE layer (regular and MTP), ascending.
    std::vector<int> all_moe_layers() const {
        std::vector<int> all = moe_layers;
        all.insert(all.end(), nextn_layers.begin(), nextn_layers.end());
        std::sort(all.begin(), all.end());
        return all;
    }
};

// Where two sets of router norms disagree beyond BF16 / quantization rounding: "" when they
// agree on every layer both record, else a description of the first difference ("layer 3,
// expert 5: 1.234 vs 0.987").
std::string router_norms_mismatch(const RouterNorms & a, const RouterNorms & b);

// The one same-weights rule for what records a model by its routers (a stats file, a plan):
// "" when a model with router `fingerprint` ("" unknown) and `norms` (empty: unknown) can be the
// model of `shape`, else what tells them apart ("other router weights (fingerprint a, the
// model's b)", or "other router weights or another expert order (layer 3, expert 5: ...,
// recorded vs the model's)").
std::string router_identity_mismatch(const std::string & fingerprint, const RouterNorms & norms,
                                     const MoeShape & shape);

}  // namespace reap
