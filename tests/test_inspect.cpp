// inspect reports exactly what synth was asked to make.
#include "core/error.h"
#include "core/text.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "moe/expert_budget.h"
#include "moe/inspect.h"
#include "prune/planner.h"
#include "support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using namespace reap;
using nlohmann::json;

namespace {

struct Case {
    synth::Options   o;
    std::vector<int> moe, dense;
    size_t           expert_tensors_per_layer;
    bool             shared;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    synth::Options    o;
    o.arch = "qwen3moe";
    c.push_back({o, {0, 1, 2, 3, 4, 5, 6, 7}, {}, 4, false});
    o         = {};
    o.arch    = "llama";
    o.n_layer = 3;
    o.type    = GGML_TYPE_F16;
    c.push_back({o, {0, 1, 2}, {}, 4, false});
    o      = {};
    o.arch = "deepseek2";
    c.push_back({o, {1, 2, 3, 4, 5}, {0}, 5, true});
    o          = {};
    o.arch     = "gpt-oss";
    o.type     = GGML_TYPE_Q4_K;
    o.n_expert = 32;
    c.push_back({o, {0, 1, 2, 3}, {}, 8, false});
    o               = {};
    o.arch          = "nemotron_h_moe";
    o.n_layer       = 12;
    o.n_expert_used = 6;
    o.type          = GGML_TYPE_F32;
    c.push_back({o, {1, 5, 7, 11}, {}, 4, true});
    return c;
}

TEST(Inspect, ReportsWhatSynthMade) {
    for (const auto & c : cases()) {
        SCOPED_TRACE(c.o.arch);
        const auto      resolved = synth::resolve(c.o);
        const auto      path     = test::synth_model(c.o);
        const GgufFile  f        = GgufFile::open(path);
        const MoeLayout m        = analyze_moe(f);

        EXPECT_EQ(m.arch, c.o.arch);
        EXPECT_EQ(int(m.n_layer), resolved.n_layer);
        EXPECT_EQ(int(m.n_expert), resolved.n_expert);
        EXPECT_EQ(int(m.max_expert_used()), resolved.n_expert_used);
        EXPECT_EQ(m.moe_layer_indices(), c.moe);
        std::vector<int> dense;
        for (const auto & L : m.layers) {
            if (L.kind == LayerKind::dense) dense.push_back(L.index);
            if (L.kind == LayerKind::moe) {
                EXPECT_EQ(L.expert_tensors.size(), c.expert_tensors_per_layer) << "layer " << L.index;
                EXPECT_EQ(L.has_shared_expert, c.shared) << "layer " << L.index;
                EXPECT_EQ(int(L.n_expert_used), resolved.n_expert_used);
            }
        }
        EXPECT_EQ(dense, c.dense);
        if (c.o.arch == "deepseek2") {
            EXPECT_EQ(m.n_expert_groups, 4u);
            EXPECT_EQ(m.n_group_used, 2u);
        }

        for (const auto & e : m.expert_tensors) {
            SCOPED_TRACE(e.info->name);
            EXPECT_EQ(e.info->ne[e.info->n_dims - 1], resolved.n_expert);
            EXPECT_EQ(e.slice_bytes * uint64_t(resolved.n_expert), e.info->nbytes);
            if (e.suffix == "ffn_up_exps.weight") {
                EXPECT_EQ(e.role, ExpertRole::expert_weights);
                EXPECT_EQ(e.info->type, resolved.type);
                EXPECT_EQ(e.info->ne[0], resolved.n_embd);
                EXPECT_EQ(e.info->ne[1], resolved.n_ff);
            }
            if (e.suffix == "ffn_gate_inp.weight") {
                EXPECT_EQ(e.role, ExpertRole::router);
                EXPECT_EQ(e.info->type, GGML_TYPE_F32);
            }
        }

        // Sizes (the one owner, the GGUF writer's): keeping all experts is the file itself plus
        // the reap.prune.* keys (a kept-id list of n_expert u32 per MoE layer, names and a few
        // scalars); fewer experts remove exactly their slices and their ids (up to alignment
        // padding, at most 31 bytes per tensor and 31 for the header).
        const GgufModel model(path);
        const uint64_t  n_moe = m.shape().all_moe_layers().size();
        const uint64_t  all   = model.pruned_size(uniform_plan(m.shape(), m.n_expert), 0);
        EXPECT_GT(all, m.file_size + 4 * m.n_expert * n_moe);
        EXPECT_LE(all, m.file_size + 4 * m.n_expert * n_moe + 64 * n_moe + 256);
        const uint32_t half  = m.n_expert / 2;
        const uint64_t saved = all - model.pruned_size(uniform_plan(m.shape(), half), 0);
        const uint64_t want  = m.expert_bytes() / 2 + 4 * (m.n_expert - half) * n_moe;
        EXPECT_LE(saved > want ? saved - want : want - saved, 32 * (m.expert_tensors.size() + 1));

        // The planted ground truth is recorded for every MoE layer, without overlaps.
        for (int il : c.moe) {
            std::set<uint64_t> seen;
            for (const char * kind : {"dead", "rare", "weak"}) {
                const auto key = synth::planted_key(il, kind);
                ASSERT_TRUE(f.is_array(key)) << key;
                const auto ids = f.get_uint_array(key);
                EXPECT_EQ(ids.size(), size_t(std::max(1, resolved.n_expert / 8)));
                for (auto id : ids) {
                    EXPECT_LT(id, uint64_t(resolved.n_expert));
                    EXPECT_TRUE(seen.insert(id).second) << "expert " << id << " planted twice";
                }
            }
        }
    }
}

TEST(Inspect, JsonFromTheCommandLineMatches) {
    synth::Options o;
    o.arch       = "deepseek2";
    const auto p = test::synth_model(o);
    const auto r = test::run_reap({"inspect", "--json", p});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["architecture"], "deepseek2");
    EXPECT_EQ(j["n_expert"], 16);
    EXPECT_EQ(j["n_expert_used"], 4);
    EXPECT_EQ(j["expert_groups"], 4);
    EXPECT_EQ(j["moe_layers"], json({1, 2, 3, 4, 5}));
    EXPECT_EQ(j["dense_layers"], json::array({0}));
    EXPECT_EQ(j["shared_experts"], 1);
    // the synthetic model's planted ground truth: 2 dead, 2 rare, 2 weak per MoE layer
    ASSERT_TRUE(j.contains("planted"));
    EXPECT_EQ(j["planted"].size(), 5u);
    EXPECT_EQ(j["planted"]["1"]["dead"].size(), 2u);
    EXPECT_EQ(j["expert_tensors"].size(), 25u);
    ASSERT_EQ(j["pruned_sizes"].size(), 3u);
    EXPECT_EQ(j["pruned_sizes"][0]["kept_experts"], 12);
    EXPECT_EQ(j["pruned_sizes"][1]["kept_experts"], 8);
    // 4 of 16 experts in 4 groups leaves 1 per group: llama.cpp's grouped top-k needs 2.
    EXPECT_TRUE(j["pruned_sizes"][2]["file_size"].is_null());
    EXPECT_NE(j["pruned_sizes"][2]["why_not"].get<std::string>().find("per group"), std::string::npos);

    const auto t = test::run_reap({"inspect", p});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    EXPECT_NE(t.out.find("architecture:   deepseek2"), std::string::npos);
    EXPECT_NE(t.out.find("blk.5.ffn_down_exps.weight"), std::string::npos);
    EXPECT_NE(t.out.find("50% of experts: keep   8"), std::string::npos);
}

// Planted super experts are ground truth like the dead, rare and weak ones: inspect shows them,
// with their outlier channels, in JSON and in text (it used to leave them out of both).
TEST(Inspect, ShowsPlantedSuperExperts) {
    synth::Options o;  // qwen3moe
    o.n_layer    = 2;
    o.n_embd     = 64;
    o.n_ff       = 64;
    o.n_super    = 1;
    const auto p = test::synth_model(o);
    const auto f = GgufFile::open(p);
    const auto r = test::run_reap({"inspect", "--json", p});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    ASSERT_TRUE(j.contains("planted"));
    ASSERT_EQ(j["planted"].size(), 2u);
    const auto t = test::run_reap({"inspect", p});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    for (int il : {0, 1}) {
        const json & got = j["planted"][std::to_string(il)];
        const auto   ids = f.get_uint_array(synth::planted_key(il, "super"));
        const auto   ch  = f.get_uint_array(synth::planted_key(il, "super_channel"));
        ASSERT_EQ(ids.size(), 1u);
        EXPECT_EQ(got["super"], json(ids)) << got.dump();
        EXPECT_EQ(got["super_channel"], json(ch)) << got.dump();
        EXPECT_NE(t.out.find(strfmt("layer %d: dead [", il)), std::string::npos) << t.out;
        EXPECT_NE(t.out.find(strfmt("; super [%u (channel %u)]", unsigned(ids[0]), unsigned(ch[0]))), std::string::npos)
            << t.out;
    }
    // Without super experts none are claimed.
    o.n_super     = 0;
    const json j0 = json::parse(test::run_reap({"inspect", "--json", test::synth_model(o)}).out);
    EXPECT_FALSE(j0["planted"]["0"].contains("super")) << j0["planted"].dump();
}

TEST(ExpertBudget, KeptCounts) {
    synth::Options o;  // qwen3moe: 16 experts, 4 per token
    const GgufFile f = GgufFile::open(test::synth_model(o));
    const MoeShape m = analyze_moe(f).shape();
    EXPECT_EQ(kept_count_for_ratio(m, 1.0), 16u);
    EXPECT_EQ(kept_count_for_ratio(m, 0.5), 8u);
    EXPECT_EQ(kept_count_for_ratio(m, 0.25), 4u);
    EXPECT_THROW(kept_count_for_ratio(m, 0.1), Error);  // 2 < 4 experts per token
    EXPECT_THROW(kept_count_for_ratio(m, 0.0), Error);
    EXPECT_THROW(kept_count_for_ratio(m, 1.5), Error);
}

}  // namespace
