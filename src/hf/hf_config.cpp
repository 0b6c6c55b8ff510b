#include "hf/hf_config.h"

#include "core/error.h"

#include <map>

namespace reap {

namespace {

// Names of the routed-expert count across transformers configs (llama.cpp's converters read
// num_local_experts / num_experts / n_routed_experts; ERNIE and others use moe_num_experts).
const char * const k_count_keys[] = {"num_experts",     "num_local_experts",  "n_routed_experts",
                                     "moe_num_experts", "num_routed_experts", "n_experts"};
// Experts per token.
const char * const k_used_keys[] = {
    "num_experts_per_tok", "num_experts_per_token", "experts_per_token", "top_k_experts", "moe_topk", "moe_k"};
// Objects that hold the text model's configuration in multimodal checkpoints.
const char * const k_sections[] = {"", "text_config", "llm_config", "language_config"};

// llama.cpp's architecture for the transformers class (as its converter registers it).
std::string llama_arch(const nlohmann::json & config) {
    static const std::map<std::string, std::string> archs = {
        {"Qwen3MoeForCausalLM", "qwen3moe"},
        {"Qwen2MoeForCausalLM", "qwen2moe"},
        {"MixtralForCausalLM", "llama"},
        {"DeepseekV3ForCausalLM", "deepseek2"},
        {"DeepseekV2ForCausalLM", "deepseek2"},
        {"GptOssForCausalLM", "gpt-oss"},
        {"NemotronHForCausalLM", "nemotron_h_moe"},
        {"Glm4MoeForCausalLM", "glm4moe"},
    };
    if (!config.contains("architectures") || !config["architectures"].is_array()) return "";
    for (const auto & a : config["architectures"]) {
        if (!a.is_string()) continue;
        const auto it = archs.find(a.get<std::string>());
        if (it != archs.end()) return it->second;
    }
    return "";
}

const nlohmann::json * section(const nlohmann::json & config, const std::string & s) {
    if (s.empty()) return &config;
    if (config.contains(s) && config[s].is_object()) return &config[s];
    return nullptr;
}

// The value of the first of `keys` present (in any section); 0 when none.
uint32_t first_uint(const nlohmann::json & config, const char * const * keys, size_t n, const std::string & path) {
    for (const char * s : k_sections) {
        const nlohmann::json * o = section(config, s);
        for (size_t i = 0; o != nullptr && i < n; i++) {
            if (!o->contains(keys[i]) || (*o)[keys[i]].is_null()) continue;
            const auto & v = (*o)[keys[i]];
            if (!v.is_number_unsigned() || v.get<uint64_t>() > 1u << 20) {
                fail("%s: \"%s\" is not a usable count", path.c_str(), keys[i]);
            }
            return v.get<uint32_t>();
        }
    }
    return 0;
}

uint32_t one_uint(const nlohmann::json & config, const char * key, const std::string & path) {
    const char * const keys[] = {key};
    return first_uint(config, keys, 1, path);
}

}  // namespace

HfMoeConfig read_moe_config(const nlohmann::json & config, const std::string & path) {
    HfMoeConfig m;
    m.arch = llama_arch(config);
    for (const char * s : k_sections) {
        const nlohmann::json * o = section(config, s);
        for (const char * k : k_count_keys) {
            if (o == nullptr || !o->contains(k) || (*o)[k].is_null()) continue;
            const auto & v = (*o)[k];
            if (!v.is_number_unsigned() || v.get<uint64_t>() > 1u << 20)
                fail("%s: \"%s\" is not an expert count", path.c_str(), k);
            if (m.n_expert != 0 && v.get<uint32_t>() != m.n_expert) {
                fail("%s: \"%s\" says %u experts but another key says %u", path.c_str(), k, v.get<uint32_t>(),
                     m.n_expert);
            }
            m.n_expert = v.get<uint32_t>();
            m.expert_count_keys.push_back({s, k});
        }
    }
    if (m.expert_count_keys.empty()) {
        fail(
            "%s: no expert-count key (num_experts, num_local_experts, n_routed_experts, moe_num_experts, ...): not a "
            "mixture-of-experts model",
            path.c_str());
    }
    if (m.n_expert < 2) fail("%s: %u routed experts: nothing to prune", path.c_str(), m.n_expert);
    m.n_expert_used   = first_uint(config, k_used_keys, std::size(k_used_keys), path);
    m.n_nextn         = one_uint(config, "num_nextn_predict_layers", path);
    m.n_layer         = one_uint(config, "num_hidden_layers", path) + m.n_nextn;
    const uint32_t ng = one_uint(config, "n_group", path);
    if (ng > 1) {
        m.n_expert_groups = ng;
        m.n_group_used    = one_uint(config, "topk_group", path);
    }
    return m;
}

std::string pruned_config_text(const std::string & text, const HfMoeConfig & moe, uint32_t kept,
                               const std::string & path) {
    nlohmann::ordered_json c;
    try {
        c = nlohmann::ordered_json::parse(text);  // already checked by HfCheckpoint::open
    } catch (const nlohmann::json::exception & e) {
        fail("%s: not valid JSON (%s)", path.c_str(), e.what());
    }
    for (const auto & k : moe.expert_count_keys) {
        (k.section.empty() ? c : c[k.section])[k.key] = kept;
    }
    for (const char * s : k_sections) {
        nlohmann::ordered_json * o = s[0] == '\0' ? &c : (c.contains(s) && c[s].is_object() ? &c[s] : nullptr);
        for (const char * k : k_used_keys) {
            if (o != nullptr && o->contains(k) && (*o)[k].is_number_unsigned() && (*o)[k].get<uint64_t>() > kept) {
                (*o)[k] = kept;
            }
        }
    }
    return c.dump(2) + "\n";
}

}  // namespace reap
