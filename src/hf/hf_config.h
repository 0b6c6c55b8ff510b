// What a Hugging Face config.json says about the routed experts, and its rewrite for a pruned
// model. Architectures name the same things differently (num_experts, num_local_experts,
// n_routed_experts, moe_num_experts, ...); the keys are found, not assumed. Multimodal configs
// keep the text model's keys in a nested "text_config" / "llm_config" object, also searched.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

struct HfConfigKey {
    std::string section;  // "" for the top level, else the nested object's key ("text_config")
    std::string key;
};

struct HfMoeConfig {
    std::string              arch;               // llama.cpp's name for it ("qwen3moe", ...); "" when unknown
    std::vector<HfConfigKey> expert_count_keys;  // every key holding the routed-expert count
    uint32_t                 n_expert        = 0;
    uint32_t                 n_expert_used   = 0;
    uint32_t                 n_layer         = 0;  // num_hidden_layers (+ num_nextn_predict_layers)
    uint32_t                 n_nextn         = 0;
    uint32_t                 n_expert_groups = 0;  // n_group when > 1
    uint32_t                 n_group_used    = 0;  // topk_group
};

// Reads the expert keys of `config` (from `path`, named in errors).
HfMoeConfig read_moe_config(const nlohmann::json & config, const std::string & path);

// config.json for the model keeping `kept` experts per layer: the expert-count keys set to
// `kept`, experts-per-token keys lowered to `kept` only when above it, every other key and the
// key order as in `text` (the original file).
std::string pruned_config_text(const std::string & text, const HfMoeConfig & moe, uint32_t kept,
                               const std::string & path);

}  // namespace reap
