// The shape of a model's routed experts, independent of the file format: what planning, the
// expert budget and the same-model checks need, and nothing about tensors or bytes. A GGUF
// model gives one through MoeLayout::shape(); a stats file records one in its "_meta".
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace reap {

struct MoeShape {
    std::string      arch;                 // llama.cpp's architecture name ("qwen3moe", "deepseek2", ...)
    uint32_t         n_layer         = 0;  // all blocks, MoE or not
    uint32_t         n_expert        = 0;  // routed experts per MoE layer
    uint32_t         n_expert_used   = 0;  // experts per token (the largest, when it varies by layer)
    uint32_t         n_expert_groups = 0;  // 0 or 1: no grouped routing
    uint32_t         n_group_used    = 0;  // groups a token may route to
    std::vector<int> moe_layers;           // regular MoE layers (the ones with statistics), ascending
    std::vector<int> nextn_layers;         // MoE layers of next-token-prediction (MTP) blocks, ascending
    std::string      router_fingerprint;   // identity of the weights (moe/router_fingerprint.h); "" unknown

    // Groups of experts that must keep the same number each (1 without grouped routing).
    uint32_t groups() const { return n_expert_groups > 1 ? n_expert_groups : 1; }
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

}  // namespace reap
