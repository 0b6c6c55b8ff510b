#include "synth/synth_hf.h"

#include "core/error.h"
#include "core/stop_signal.h"
#include "core/tensor_codec.h"
#include "hf/hf_checkpoint.h"
#include "hf/hf_output.h"
#include "hf/safetensors.h"
#include "synth/synth_hf_map.h"

#include "ggml.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace reap::synth {

bool hf_has_layout(const std::string & arch, HfExperts e) {
    if (e == HfExperts::per_expert) return arch != "gpt-oss";  // gpt-oss ships fused experts only
    return arch == "qwen3moe" || arch == "deepseek2" || arch == "gpt-oss";
}

HfExperts parse_hf_experts(const std::string & s) {
    if (s == "per-expert") return HfExperts::per_expert;
    if (s == "fused") return HfExperts::fused;
    fail_usage("--hf-layout: '%s' is not per-expert or fused", s.c_str());
}

void check_hf_request(const std::string & arch, const std::string & gguf_path, const std::string & dir,
                      const HfOptions & o) {
    static const char * const with_config[] = {"qwen3moe", "llama", "deepseek2", "gpt-oss", "nemotron_h_moe"};
    if (std::find(std::begin(with_config), std::end(with_config), arch) == std::end(with_config)) {
        fail_usage(
            "--hf-out: no Hugging Face config for architecture '%s' (qwen3moe, llama, deepseek2, gpt-oss, "
            "nemotron_h_moe have one)",
            arch.c_str());
    }
    if (!hf_has_layout(arch, o.experts)) {
        fail_usage("--hf-layout %s: transformers does not save %s with %s experts",
                   o.experts == HfExperts::fused ? "fused" : "per-expert", arch.c_str(),
                   o.experts == HfExperts::fused ? "fused" : "per-expert");
    }
    check_hf_output_folder(dir, gguf_path);
}

namespace {

uint32_t key_u32(const GgufFile & f, const std::string & key, uint32_t def = 0) {
    if (f.is_array(key)) {
        uint64_t m = 0;
        for (uint64_t v : f.get_uint_array(key))
            m = std::max(m, v);
        return uint32_t(m);
    }
    return uint32_t(f.get_uint(key).value_or(def));
}

// DeepSeek-V3 (deepseek2): MLA ranks, routed/shared experts, groups, sigmoid scoring.
void deepseek_config(const GgufFile & f, nlohmann::ordered_json & c) {
    const std::string a = f.arch(), p = a + ".";
    auto              u = [&](const char * k) { return key_u32(f, p + k); };
    const uint32_t    H = u("attention.head_count"), E = u("expert_count"), used = u("expert_used_count");
    const uint32_t    ff_exp = u("expert_feed_forward_length");
    const uint32_t    rope   = u("rope.dimension_count");
    c.update({{"architectures", {"DeepseekV3ForCausalLM"}},
              {"model_type", "deepseek_v3"},
              {"num_key_value_heads", H},
              {"intermediate_size", u("feed_forward_length")},
              {"moe_intermediate_size", ff_exp},
              {"n_routed_experts", E},
              {"n_shared_experts", u("expert_shared_count")},
              {"num_experts_per_tok", used},
              {"n_group", u("expert_group_count")},
              {"topk_group", u("expert_group_used_count")},
              {"first_k_dense_replace", u("leading_dense_block_count")},
              {"moe_layer_freq", 1},
              {"kv_lora_rank", u("attention.kv_lora_rank")},
              {"q_lora_rank", nullptr},
              {"qk_nope_head_dim", u("attention.key_length_mla") - rope},
              {"qk_rope_head_dim", rope},
              {"v_head_dim", u("attention.value_length_mla")},
              {"routed_scaling_factor", f.get_float(p + "expert_weights_scale").value_or(1.0)},
              {"scoring_func", "sigmoid"},
              {"topk_method", "noaux_tc"},
              {"norm_topk_prob", true}});
}

// NemotronH: the hybrid pattern (M Mamba2, E MoE, * attention) and the Mamba2 sizes.
void nemotron_config(const GgufFile & f, nlohmann::ordered_json & c) {
    const std::string a = f.arch(), p = a + ".";
    auto              u = [&](const char * k) { return key_u32(f, p + k); };
    const uint32_t    E = u("expert_count"), used = u("expert_used_count");
    const uint32_t    ff_exp = u("expert_feed_forward_length");
    std::string       pattern;
    const auto        ff = f.get_uint_per_layer(p + "feed_forward_length", key_u32(f, p + "block_count"));
    const auto        kv = f.get_uint_per_layer(p + "attention.head_count_kv", ff.size());
    for (size_t il = 0; il < ff.size(); il++)
        pattern += ff[il] > 0 ? 'E' : kv[il] > 0 ? '*' : 'M';
    c.update({{"architectures", {"NemotronHForCausalLM"}},
              {"model_type", "nemotron_h"},
              {"hybrid_override_pattern", pattern},
              {"num_key_value_heads", u("attention.head_count_kv")},
              {"head_dim", u("attention.key_length")},
              {"n_routed_experts", E},
              {"num_experts_per_tok", used},
              {"moe_intermediate_size", ff_exp},
              {"moe_shared_expert_intermediate_size", u("expert_shared_feed_forward_length")},
              {"n_shared_experts", u("expert_shared_count")},
              {"n_group", 1},
              {"topk_group", 1},
              {"mamba_num_heads", u("ssm.time_step_rank")},
              {"mamba_head_dim", u("ssm.inner_size") / std::max(1u, u("ssm.time_step_rank"))},
              {"ssm_state_size", u("ssm.state_size")},
              {"conv_kernel", u("ssm.conv_kernel")},
              {"n_groups", u("ssm.group_count")},
              {"routed_scaling_factor", f.get_float(p + "expert_weights_scale").value_or(1.0)},
              {"norm_topk_prob", true}});
}

void arch_config(const GgufFile & f, nlohmann::ordered_json & c) {
    const std::string a = f.arch(), p = a + ".";
    auto              u = [&](const char * k) { return key_u32(f, p + k); };
    const uint32_t    E = u("expert_count"), used = u("expert_used_count");
    const uint32_t    ff_exp = u("expert_feed_forward_length");
    if (a == "qwen3moe") {
        c.update({{"architectures", {"Qwen3MoeForCausalLM"}},
                  {"model_type", "qwen3_moe"},
                  {"num_key_value_heads", u("attention.head_count_kv")},
                  {"head_dim", u("attention.key_length")},
                  {"intermediate_size", u("feed_forward_length")},
                  {"moe_intermediate_size", ff_exp},
                  {"num_experts", E},
                  {"num_experts_per_tok", used},
                  {"norm_topk_prob", true},
                  {"decoder_sparse_step", 1},
                  {"mlp_only_layers", nlohmann::json::array()}});
    } else if (a == "llama") {
        c.update({{"architectures", {"MixtralForCausalLM"}},
                  {"model_type", "mixtral"},
                  {"num_key_value_heads", u("attention.head_count_kv")},
                  {"intermediate_size", u("feed_forward_length")},
                  {"num_local_experts", E},
                  {"num_experts_per_tok", used}});
    } else if (a == "deepseek2") {
        deepseek_config(f, c);
    } else if (a == "gpt-oss") {
        c.update({{"architectures", {"GptOssForCausalLM"}},
                  {"model_type", "gpt_oss"},
                  {"num_key_value_heads", u("attention.head_count_kv")},
                  {"head_dim", u("attention.key_length")},
                  {"intermediate_size", ff_exp},
                  {"num_local_experts", E},
                  {"num_experts_per_tok", used},
                  {"experts_per_token", used},
                  {"sliding_window", u("attention.sliding_window")}});
    } else if (a == "nemotron_h_moe") {
        nemotron_config(f, c);
    } else {
        fail("%s: no Hugging Face config for architecture '%s'", f.path().c_str(), a.c_str());
    }
}

}  // namespace

nlohmann::ordered_json hf_config(const GgufFile & f) {
    const std::string      p = f.arch() + ".";
    nlohmann::ordered_json c;
    c["hidden_size"]             = key_u32(f, p + "embedding_length");
    c["num_hidden_layers"]       = key_u32(f, p + "block_count");
    c["num_attention_heads"]     = key_u32(f, p + "attention.head_count");
    c["vocab_size"]              = f.find_tensor("token_embd.weight")->ne[1];
    c["max_position_embeddings"] = key_u32(f, p + "context_length");
    c["rms_norm_eps"]            = f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-6);
    c["rope_theta"]              = f.get_float(p + "rope.freq_base").value_or(10000.0);
    c["tie_word_embeddings"]     = false;
    c["torch_dtype"]             = "bfloat16";
    arch_config(f, c);
    return c;
}

namespace {

void to_bytes(const std::vector<float> & v, const std::string & dtype, std::vector<uint8_t> & out) {
    const ggml_type type = dtype == "F32" ? GGML_TYPE_F32 : GGML_TYPE_BF16;
    out.resize(ggml_row_size(type, int64_t(v.size())));
    quantize(type, v.data(), out.data(), 1, int64_t(v.size()));
}

}  // namespace

nlohmann::json write_hf(const std::string & gguf_path, const std::string & dir, const HfOptions & o) {
    const GgufFile f = GgufFile::open(gguf_path);
    if (!hf_has_layout(f.arch(), o.experts)) {
        fail("%s: transformers does not save %s with %s experts", dir.c_str(), f.arch().c_str(),
             o.experts == HfExperts::fused ? "fused" : "per-expert");
    }
    const std::vector<HfPiece> pieces = hf_pieces(f, o.experts);
    // Shards: greedy, at most shard_max_bytes of data each (at least one tensor).
    std::vector<std::vector<size_t>> shards(1);
    uint64_t                         fill = 0, total = 0;
    for (size_t i = 0; i < pieces.size(); i++) {
        const uint64_t n = pieces[i].n_elements() * (pieces[i].dtype == "F32" ? 4 : 2);
        if (o.shard_max_bytes > 0 && fill > 0 && fill + n > o.shard_max_bytes) {
            shards.emplace_back();
            fill = 0;
        }
        shards.back().push_back(i);
        fill += n;
        total += n;
    }
    HfOutputFolder                           out(dir, gguf_path);
    const bool                               sharded = o.shard_max_bytes > 0;
    const std::map<std::string, std::string> meta    = {{"format", "pt"}};
    std::map<std::string, std::string>       weight_map;
    GgufValues                               values(f);
    std::vector<float>                       v;
    std::vector<uint8_t>                     bytes;
    StopSignalGuard signals;  // Ctrl-C: the temporary folder goes, reap exits 130 (core/stop_signal.h)
    for (size_t s = 0; s < shards.size(); s++) {
        const std::string        name = sharded ? hf_shard_name(s + 1, shards.size()) : k_hf_single_name;
        std::vector<StOutTensor> decl;
        for (size_t i : shards[s]) {
            const HfPiece & p = pieces[i];
            decl.push_back({p.name, p.dtype, p.shape, p.n_elements() * (p.dtype == "F32" ? 4 : 2)});
            weight_map[p.name] = name;
        }
        SafetensorsWriter w(out.file(name), decl, meta);
        for (size_t i : shards[s]) {
            stop_point("writing the Hugging Face folder (no output was written)");
            pieces[i].fill(values, v);
            if (v.size() != pieces[i].n_elements())
                fail("%s: tensor '%s' has the wrong size", dir.c_str(), pieces[i].name.c_str());
            to_bytes(v, pieces[i].dtype, bytes);
            w.write(bytes.data(), bytes.size());
        }
        w.finish();
    }
    if (sharded)
        write_text_file(out.file(k_hf_index_name),
                        hf_index_text(nlohmann::json(), total, {weight_map.begin(), weight_map.end()}));
    write_text_file(out.file("config.json"), hf_config(f).dump(2) + "\n");
    // A non-weight file, as real folders have (tokenizer, generation config): copied by prune.
    write_text_file(out.file("generation_config.json"), "{\n  \"do_sample\": false\n}\n");
    out.commit();
    return {{"dir", dir},
            {"architecture", f.arch()},
            {"tensors", pieces.size()},
            {"shards", shards.size()},
            {"bytes", total},
            {"layout", o.experts == HfExperts::fused ? "fused" : "per-expert"}};
}

}  // namespace reap::synth
