// reap prune on Hugging Face folders: the same plan keeps the same experts as on the GGUF of
// the same synthetic model, on every architecture and expert layout; keep-all copies bytes;
// shards, index and config stay self-consistent; the router fingerprint ties stats to weights.
#include "core/error.h"
#include "core/fs_util.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_pruner.h"
#include "gguf/moe_layout.h"
#include "gguf/router_fingerprint.h"
#include "hf/hf_checkpoint.h"
#include "hf/hf_config.h"
#include "hf/hf_layout.h"
#include "hf/hf_pruner.h"
#include "model/open_model.h"
#include "profile/profiler.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth_hf.h"

#include "ggml.h"

#include <gtest/gtest.h>

#include <regex>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

using namespace reap;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

synth::Options small(const std::string & arch, uint64_t seed = 42) {
    synth::Options o;
    o.arch    = arch;
    o.seed    = seed;
    o.n_layer = test::fewest_layers(arch);
    return o;
}

std::string export_hf(const std::string & gguf, const std::string & dir, synth::HfExperts e, uint64_t shard = 0) {
    synth::write_hf(gguf, dir, {e, shard});
    return dir;
}

// A plan keeping `kept` experts per MoE layer, a different balanced subset in every layer.
Plan test_plan(const MoeShape & s, uint32_t kept) {
    Plan p;
    p.criterion      = "test";
    p.n_expert       = s.n_expert;
    p.keep_ratio     = double(kept) / s.n_expert;
    const uint32_t g = s.groups(), per = s.n_expert / g;
    for (int il : s.all_moe_layers()) {
        LayerPlan lp;
        for (uint32_t e = 0; e < s.n_expert; e++) {
            const uint32_t in_group = e % per, group_rot = (in_group + uint32_t(il) * 3 + e / per) % per;
            (group_rot < kept / g ? lp.kept : lp.dropped).push_back(e);
        }
        lp.set_pruned_slots();
        p.layers[il] = lp;
    }
    return p;
}

std::vector<float> values(const SafetensorsFile & f, const StTensor & t) {
    std::vector<uint8_t> b(t.nbytes);
    f.read(t, 0, b.data(), b.size());
    std::vector<float> v;
    for (size_t i = 0; i < b.size(); i += t.dtype == "F32" ? 4 : 2) {
        if (t.dtype == "F32") {
            float x;
            std::memcpy(&x, &b[i], 4);
            v.push_back(x);
        } else {
            uint16_t h;
            std::memcpy(&h, &b[i], 2);
            v.push_back(ggml_bf16_to_fp32(ggml_bf16_t{h}));
        }
    }
    return v;
}

// Both folders hold the same tensors with the same shapes and values (BF16 rounding apart).
void expect_same_tensors(const std::string & a_dir, const std::string & b_dir) {
    const HfCheckpoint a = HfCheckpoint::open(a_dir), b = HfCheckpoint::open(b_dir);
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (const auto & ta : a.tensors) {
        const HfTensor * tb = b.find(ta.t->name);
        ASSERT_NE(tb, nullptr) << ta.t->name;
        ASSERT_EQ(ta.t->shape, tb->t->shape) << ta.t->name;
        ASSERT_EQ(ta.t->dtype, tb->t->dtype) << ta.t->name;
        const auto va = values(a.shards[ta.shard], *ta.t), vb = values(b.shards[tb->shard], *tb->t);
        for (size_t i = 0; i < va.size(); i++)
            ASSERT_NEAR(va[i], vb[i], std::fabs(va[i]) / 128 + 1e-30) << ta.t->name << " [" << i << "]";
    }
}

json read_json(const std::string & p) { return read_json_file(p, "json"); }

std::string stats_for(const std::string & model, const std::string & out) {
    ProfileOptions p = test::profile_options(model, out);
    p.max_tokens     = 256;
    run_profile(p);
    return out;
}

// Copies the folder `src` to `dst`, passing every tensor of model.safetensors through `edit`
// (which may rename it, change its bytes, or add tensors to `extra`).
using TensorEdit = std::function<void(StOutTensor &, std::vector<uint8_t> &)>;
void rewrite_folder(const std::string & src, const std::string & dst, const TensorEdit & edit,
                    const std::vector<std::pair<StOutTensor, std::vector<uint8_t>>> & extra = {}) {
    fs::create_directories(dst);
    fs::copy(src + "/config.json", dst + "/config.json");
    const SafetensorsFile                                     in = SafetensorsFile::open(src + "/model.safetensors");
    std::vector<std::pair<StOutTensor, std::vector<uint8_t>>> ts;
    for (const auto & t : in.tensors()) {
        StOutTensor          o{t.name, t.dtype, t.shape, t.nbytes};
        std::vector<uint8_t> b(t.nbytes);
        in.read(t, 0, b.data(), b.size());
        edit(o, b);
        ts.emplace_back(o, b);
    }
    ts.insert(ts.end(), extra.begin(), extra.end());
    std::vector<StOutTensor> decl;
    for (const auto & t : ts)
        decl.push_back(t.first);
    SafetensorsWriter w(dst + "/model.safetensors", decl, in.metadata());
    for (const auto & t : ts)
        w.write(t.second.data(), t.second.size());
    w.finish();
}

}  // namespace

class HfSamePlan : public ::testing::TestWithParam<std::tuple<std::string, synth::HfExperts>> {};

// prune_hf(export(M)) == export(prune_gguf(M)): the HF route keeps the GGUF route's experts
// (an expert order that differed between the formats would break this), slice for slice.
TEST_P(HfSamePlan, KeepsTheGgufOutputsExperts) {
    const auto [arch, layout] = GetParam();
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small(arch));
    const std::string hf = export_hf(gguf, dir + "/hf", layout);

    const GgufFile     in    = GgufFile::open(gguf);
    const MoeLayout    ml    = analyze_moe(in);
    const MoeShape     shape = model_shape(in, ml);
    const HfCheckpoint c     = HfCheckpoint::open(hf);
    const HfLayout     hl    = analyze_hf(c);
    EXPECT_EQ(hl.shape.arch, shape.arch);
    EXPECT_EQ(hl.shape.n_layer, shape.n_layer);
    EXPECT_EQ(hl.shape.n_expert, shape.n_expert);
    EXPECT_EQ(hl.shape.n_expert_used, shape.n_expert_used);
    EXPECT_EQ(hl.shape.n_expert_groups, shape.n_expert_groups);
    EXPECT_EQ(hl.shape.moe_layers, shape.moe_layers);
    ASSERT_EQ(hl.shape.router_norms.size(), shape.moe_layers.size());
    EXPECT_EQ(router_norms_mismatch(shape.router_norms, hl.shape.router_norms), "");

    const Plan plan = test_plan(shape, shape.n_expert / 2);
    prune_model(in, ml, {{plan, dir + "/out.gguf", 0}}, false);
    prune_hf(c, hl, {{plan, dir + "/out-hf", 0}}, false);
    export_hf(dir + "/out.gguf", dir + "/ref-hf", layout);
    expect_same_tensors(dir + "/out-hf", dir + "/ref-hf");

    const json rec = read_json(dir + "/out-hf/reap_prune.json");
    for (const auto & [il, lp] : plan.layers)
        EXPECT_EQ(rec["kept"][std::to_string(il)].get<std::vector<uint32_t>>(), lp.kept) << il;
    const HfMoeConfig pruned = read_moe_config(read_json(dir + "/out-hf/config.json"), "config.json");
    EXPECT_EQ(pruned.n_expert, plan.expert_count());
    EXPECT_TRUE(fs::exists(dir + "/out-hf/generation_config.json"));
}

INSTANTIATE_TEST_SUITE_P(AllArchsAndLayouts, HfSamePlan,
                         ::testing::Values(std::make_tuple("qwen3moe", synth::HfExperts::per_expert),
                                           std::make_tuple("qwen3moe", synth::HfExperts::fused),
                                           std::make_tuple("llama", synth::HfExperts::per_expert),
                                           std::make_tuple("deepseek2", synth::HfExperts::per_expert),
                                           std::make_tuple("deepseek2", synth::HfExperts::fused),
                                           std::make_tuple("gpt-oss", synth::HfExperts::fused),
                                           std::make_tuple("nemotron_h_moe", synth::HfExperts::per_expert)),
                         [](const auto & param_info) {
                             std::string n =
                                 std::get<0>(param_info.param) +
                                 (std::get<1>(param_info.param) == synth::HfExperts::fused ? "_fused" : "_per_expert");
                             for (char & ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

TEST(HfPrune, KeepAllCopiesEveryTensorByteForByteShardedInShardedOut) {
    const std::string  dir = test::tmp_dir(), gguf = test::synth_model(small("qwen3moe"));
    const std::string  hf = export_hf(gguf, dir + "/hf", synth::HfExperts::per_expert, 1u << 20);
    const HfCheckpoint c  = HfCheckpoint::open(hf);
    ASSERT_GT(c.shards.size(), 2u);
    const HfLayout hl   = analyze_hf(c);
    Plan           all  = test_plan(hl.shape, hl.shape.n_expert);
    Plan           half = test_plan(hl.shape, hl.shape.n_expert / 2);
    prune_hf(c, hl, {{all, dir + "/all", 0}, {half, dir + "/half", 0}}, false);

    const HfCheckpoint a = HfCheckpoint::open(dir + "/all");
    EXPECT_EQ(a.shard_names, c.shard_names);
    EXPECT_EQ(a.index["weight_map"], c.index["weight_map"]);
    EXPECT_EQ(a.config, c.config);
    for (const auto & t : c.tensors) {
        const HfTensor * o = a.find(t.t->name);
        ASSERT_NE(o, nullptr) << t.t->name;
        std::vector<uint8_t> x(t.t->nbytes), y(o->t->nbytes);
        c.shards[t.shard].read(*t.t, 0, x.data(), x.size());
        a.shards[o->shard].read(*o->t, 0, y.data(), y.size());
        ASSERT_EQ(x, y) << t.t->name;
    }

    // The half output: a valid index (HfCheckpoint::open checks every name against its shard),
    // total_size the tensor bytes, shards no larger than the input's, half the experts' names.
    const HfCheckpoint h = HfCheckpoint::open(dir + "/half");
    ASSERT_GT(h.shards.size(), 1u);
    uint64_t total = 0, max_in = 0;
    for (const auto & t : h.tensors)
        total += t.t->nbytes;
    for (const auto & s : c.shards)
        max_in = std::max(max_in, s.file_size() - s.data_start());
    for (const auto & s : h.shards)
        EXPECT_LE(s.file_size() - s.data_start(), max_in);
    EXPECT_EQ(h.index["metadata"]["total_size"].get<uint64_t>(), total);
    EXPECT_EQ(h.index["weight_map"].size(), h.tensors.size());
    EXPECT_NE(h.find("model.layers.1.mlp.experts.7.down_proj.weight"), nullptr);
    EXPECT_EQ(h.find("model.layers.1.mlp.experts.8.down_proj.weight"), nullptr);
    EXPECT_EQ(h.find("model.layers.0.mlp.gate.weight")->t->shape, (std::vector<uint64_t>{8, 256}));

    // The data sits at the same offset within a 64 KiB block as in the input (each shard's
    // header is padded for it), so copy_file_range moves whole folios. Here the dropped expert
    // tensors are whole blocks (128 KiB) and the dropped router rows 4 KiB, so all bytes line up
    // within their pages and most within their blocks.
    uint64_t         lined_up = 0, in_block = 0;
    const std::regex expert_name(R"((model\.layers\.(\d+)\.mlp\.experts\.)(\d+)(\..*))");
    for (const auto & t : h.tensors) {
        std::string name = t.t->name;  // the input's name: kept experts were renumbered
        std::smatch e;
        if (std::regex_match(name, e, expert_name)) {
            const auto & kept = half.layers.at(std::stoi(e[2])).kept;
            name              = e[1].str() + std::to_string(kept.at(size_t(std::stoi(e[3])))) + e[4].str();
        }
        const HfTensor * src = c.find(name);
        ASSERT_NE(src, nullptr) << name;
        if (src->t->offset % 4096 == t.t->offset % 4096) lined_up += t.t->nbytes;
        if (src->t->offset % k_copy_alignment == t.t->offset % k_copy_alignment) in_block += t.t->nbytes;
    }
    EXPECT_GT(double(lined_up), 0.95 * double(total)) << lined_up << " of " << total << " bytes";
    EXPECT_GT(double(in_block), 0.5 * double(total)) << in_block << " of " << total << " bytes";
}

TEST(HfConfig, ExpertCountKeysFoundAndRewrittenExactly) {
    const std::string text =
        R"({"zeta": 1, "num_local_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,)"
        R"( "text_config": {"num_experts": 16, "experts_per_token": 4}, "alpha": [1, 2]})";
    const HfMoeConfig m = read_moe_config(json::parse(text), "config.json");
    EXPECT_EQ(m.n_expert, 16u);
    ASSERT_EQ(m.expert_count_keys.size(), 2u);
    EXPECT_EQ(m.n_expert_groups, 4u);
    EXPECT_EQ(m.n_group_used, 2u);

    const std::string out8 = pruned_config_text(text, m, 8, "config.json");
    EXPECT_EQ(out8.find("\"zeta\""), out8.find('"'));  // key order kept
    json want = json::parse(text), got = json::parse(out8);
    want["num_local_experts"]          = 8;
    want["text_config"]["num_experts"] = 8;
    EXPECT_EQ(got, want);  // every other key as it was, experts per token and groups untouched

    json two                                = want;
    two["num_local_experts"]                = 2;
    two["text_config"]["num_experts"]       = 2;
    two["num_experts_per_tok"]              = 2;
    two["text_config"]["experts_per_token"] = 2;
    EXPECT_EQ(json::parse(pruned_config_text(text, m, 2, "config.json")), two);

    EXPECT_THROW(read_moe_config(json::parse(R"({"num_experts": 16, "n_routed_experts": 8})"), "c"), Error);
    EXPECT_THROW(read_moe_config(json::parse(R"({"hidden_size": 16})"), "c"), Error);
}

// Stats carry per-layer router row norms: the HF pruner (and the GGUF one) refuse stats of
// another model and of the same model with its experts in another order; old stats still work.
TEST(HfPrune, RouterFingerprintTiesStatsToTheWeights) {
    const std::string dir = test::tmp_dir();
    const std::string a = test::synth_model(small("qwen3moe")), b = test::synth_model(small("qwen3moe", 7));
    const std::string stats = stats_for(a, dir + "/a.json");
    ASSERT_TRUE(read_json(stats)["_meta"].contains("router_norms"));
    const std::string a_hf = export_hf(a, dir + "/a-hf", synth::HfExperts::per_expert);
    const std::string b_hf = export_hf(b, dir + "/b-hf", synth::HfExperts::fused);

    PruneRequest r;
    r.stats         = {stats};
    r.keep_ratios   = {0.5, 0.75};
    r.show_progress = false;
    r.model         = a_hf;
    r.output        = dir + "/ok";
    EXPECT_TRUE(run_prune(r).wrote_models);
    EXPECT_TRUE(fs::exists(dir + "/ok-keep0.50/model.safetensors"));
    EXPECT_TRUE(fs::exists(dir + "/ok-keep0.75/model.safetensors"));

    auto refused = [&](const std::string & model, const std::string & st) {
        PruneRequest q = r;
        q.model        = model;
        q.stats        = {st};
        q.output       = dir + "/refused";
        try {
            run_prune(q);
        } catch (const Error & e) {
            EXPECT_FALSE(fs::exists(dir + "/refused-keep0.50"));
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(refused(b_hf, stats).find("router"), std::string::npos);

    // Layer 0's experts in reverse order (names and router rows), otherwise the same checkpoint.
    const uint32_t E = 16;
    rewrite_folder(a_hf, dir + "/perm-hf", [&](StOutTensor & t, std::vector<uint8_t> & bytes) {
        const std::string p = "model.layers.0.mlp.experts.";
        if (t.name.rfind(p, 0) == 0) {
            const size_t dot = t.name.find('.', p.size());
            t.name =
                p + std::to_string(E - 1 - std::stoul(t.name.substr(p.size(), dot - p.size()))) + t.name.substr(dot);
        } else if (t.name == "model.layers.0.mlp.gate.weight") {
            const size_t         row = bytes.size() / E;
            std::vector<uint8_t> rows(bytes.size());
            for (uint32_t e = 0; e < E; e++)
                std::memcpy(&rows[(E - 1 - e) * row], &bytes[e * row], row);
            bytes = rows;
        }
    });
    const std::string why = refused(dir + "/perm-hf", stats);
    EXPECT_NE(why.find("expert order"), std::string::npos) << why;
    EXPECT_NE(why.find(stats), std::string::npos) << why;

    // The GGUF route checks the norms too (with the hash of the router bytes gone).
    json s = read_json(stats);
    s["_meta"].erase("router_fingerprint");
    std::ofstream(dir + "/norms-only.json") << s.dump();
    EXPECT_NE(refused(b, dir + "/norms-only.json").find("router"), std::string::npos);
    // Stats written before the norms existed are accepted as before.
    s["_meta"].erase("router_norms");
    std::ofstream(dir + "/old.json") << s.dump();
    EXPECT_EQ(refused(a_hf, dir + "/old.json"), "");
}

// Bad input: one line naming the file, exit 1, no output folder (nor its temporary) left.
TEST(HfPrune, BadInputIsOneLineNamingTheFileAndLeavesNoOutput) {
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small("qwen3moe"));
    const std::string good    = export_hf(gguf, dir + "/good", synth::HfExperts::per_expert);
    const std::string sharded = export_hf(gguf, dir + "/sharded", synth::HfExperts::per_expert, 4u << 20);
    auto              copy    = [&](const std::string & src, const std::string & name) {
        fs::copy(src, dir + "/" + name, fs::copy_options::recursive);
        return dir + "/" + name;
    };
    struct Case {
        std::string model, file, says;
    };
    std::vector<Case> cases;
    {
        const std::string m = copy(good, "trunc");
        test::write_bytes(m + "/model.safetensors", "\x10\0\0\0", 4);
        cases.push_back({m, m + "/model.safetensors", "truncated"});
    }
    {
        const std::string m = copy(good, "len");
        auto              b = test::read_bytes(m + "/model.safetensors");
        b.resize(4096);  // header length as written, most of the file gone
        b[0] = 0xff, b[1] = 0xff, b[2] = 0xff;
        test::write_bytes(m + "/model.safetensors", b.data(), b.size());
        cases.push_back({m, m + "/model.safetensors", "larger than the file"});
    }
    auto edited = [&](const std::string & name, const TensorEdit & e,
                      const std::vector<std::pair<StOutTensor, std::vector<uint8_t>>> & extra = {}) {
        rewrite_folder(good, dir + "/" + name, e, extra);
        return dir + "/" + name;
    };
    {
        // Overlapping and out-of-range offsets, a dtype its bytes cannot hold: header text edits.
        auto patch = [&](const std::string & name, const std::string & from, const std::string & to) {
            const std::string m = copy(good, name);
            auto              b = test::read_bytes(m + "/model.safetensors");
            std::string       s(b.begin(), b.end());
            const size_t      at = s.find(from);
            EXPECT_NE(at, std::string::npos) << from;
            s.replace(at, from.size(), to);
            test::write_bytes(m + "/model.safetensors", s.data(), s.size());
            return m;
        };
        const SafetensorsFile f  = SafetensorsFile::open(good + "/model.safetensors");
        const StTensor &      t1 = f.tensors()[1];
        const uint64_t        b1 = t1.offset - f.data_start(), e1 = b1 + t1.nbytes;
        const std::string     offs = "[" + std::to_string(b1) + "," + std::to_string(e1) + "]";
        // Same number of characters, so the header length stays right.
        std::string over = "[" + std::to_string(b1 - 2) + "," + std::to_string(e1 - 2) + "]";
        std::string far  = "[" + std::to_string(b1 + 900000000) + "," + std::to_string(e1 + 900000000) + "]";
        over.resize(offs.size(), ' ');
        std::string dtype     = "\"dtype\":\"" + t1.dtype + "\"",
                    bad_dtype = "\"dtype\":\"" + std::string(t1.dtype == "BF16" ? "F32 " : "BF16") + "\"";
        const std::string m1  = patch("overlap", offs, over);
        cases.push_back({m1, m1 + "/model.safetensors", "overlap"});
        const std::string m2 = copy(good, "range");
        {
            auto         b = test::read_bytes(m2 + "/model.safetensors");
            std::string  s(b.begin(), b.end());
            const size_t at = s.find(offs);
            s.replace(at, offs.size(), far);  // longer: fix the length field
            uint64_t n = 0;
            for (int i = 7; i >= 0; i--)
                n = (n << 8) | uint8_t(s[size_t(i)]);
            n += far.size() - offs.size();
            for (int i = 0; i < 8; i++)
                s[size_t(i)] = char((n >> (8 * i)) & 0xff);
            test::write_bytes(m2 + "/model.safetensors", s.data(), s.size());
        }
        cases.push_back({m2, m2 + "/model.safetensors", "outside"});
        (void) dtype;
        (void) bad_dtype;
    }
    {
        const std::string m = edited("dtype", [](StOutTensor &, std::vector<uint8_t> &) {});
        auto              b = test::read_bytes(m + "/model.safetensors");
        std::string       s(b.begin(), b.end());
        const size_t      at = s.find("\"BF16\"");
        s.replace(at, 6, "\"F32\" ");  // same length: the bytes now hold half the F32 values
        test::write_bytes(m + "/model.safetensors", s.data(), s.size());
        cases.push_back({m, m + "/model.safetensors", "needs"});
    }
    {
        const std::string m = copy(sharded, "missing");
        const auto        c = HfCheckpoint::open(m);
        fs::remove(m + "/" + c.shard_names[1]);
        cases.push_back({m, m + "/" + c.shard_names[1], "missing shard"});
    }
    {
        const std::string m                              = copy(sharded, "ghost");
        json              idx                            = read_json(m + "/model.safetensors.index.json");
        idx["weight_map"]["model.layers.9.ghost.weight"] = HfCheckpoint::open(m).shard_names[0];
        std::ofstream(m + "/model.safetensors.index.json") << idx.dump();
        cases.push_back({m, m + "/model.safetensors.index.json", "in no shard"});
    }
    {
        std::vector<uint8_t> z(16 * 256 * 2);
        const std::string    m = edited("unknown", [](StOutTensor &, std::vector<uint8_t> &) {},
                                        {{{"model.layers.0.mlp.mystery.weight", "BF16", {16, 256}, z.size()}, z}});
        cases.push_back({m, m + "/model.safetensors", "expert-sized"});
    }
    for (const auto & c : cases) {
        const auto out = dir + "/out-" + fs::path(c.model).filename().string();
        const auto r   = test::run_reap(
              {"prune", "-m", c.model, "--stats", dir + "/none.json", "--keep-ratio", "0.5", "-o", out, "--no-progress"});
        EXPECT_EQ(r.exit_code, 1) << c.model << r.err;
        EXPECT_NE(r.err.find(c.file), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_FALSE(fs::exists(out)) << out;
    }
    for (const auto & e : fs::directory_iterator(dir))
        EXPECT_EQ(e.path().filename().string().find(".out-"), std::string::npos) << e.path();
}

// Weight files besides the checkpoint's own (gpt-oss repos' original/ and metal/, Mistral's
// consolidated.safetensors) are unpruned copies of the model: left out of the output, with a
// note; a model.safetensors beside an index that does not name it is refused as ambiguous
// (transformers would load it first). Issue 21.
TEST(HfPrune, WeightFilesBesideTheCheckpointsOwnAreLeftOut) {
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small("qwen3moe"));
    const std::string in = export_hf(gguf, dir + "/in", synth::HfExperts::per_expert, 4u << 20);
    const auto p = test::run_reap({"profile", "-m", gguf, "--data", REAP_SOURCE_DIR "/data/calibration/sample.jsonl",
                                   "--max-samples", "4", "-o", dir + "/s.json", "--no-progress"});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    const std::string shard = in + "/" + HfCheckpoint::open(in).shard_names[0];
    fs::create_directories(in + "/original");
    fs::create_directories(in + "/metal");
    fs::copy_file(shard, in + "/original/model.safetensors");
    std::ofstream(in + "/original/config.json") << "{\"num_experts\": 16}\n";
    std::ofstream(in + "/original/tokenizer.model") << "not weights\n";
    fs::copy_file(shard, in + "/metal/model.bin");
    fs::copy_file(shard, in + "/consolidated.safetensors");
    const std::vector<std::string> left = {"consolidated.safetensors", "metal/model.bin", "original/model.safetensors"};
    EXPECT_EQ(HfCheckpoint::open(in).weights_outside_index, left);

    const std::string out = dir + "/out";
    const auto        r   = test::run_reap(
                 {"prune", "-m", in, "--stats", dir + "/s.json", "--keep-ratio", "0.5", "-o", out, "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("left out of the output (unpruned copies of the model): consolidated.safetensors, "
                         "metal/model.bin, original/model.safetensors"),
              std::string::npos)
        << r.err;
    for (const auto & f : left)
        EXPECT_FALSE(fs::exists(out + "/" + f)) << f;
    EXPECT_TRUE(fs::exists(out + "/original/config.json"));
    EXPECT_TRUE(fs::exists(out + "/original/tokenizer.model"));
    EXPECT_TRUE(fs::exists(out + "/generation_config.json"));
    EXPECT_EQ(read_json(out + "/reap_prune.json")["left_out"], json(left));
    uint64_t in_weights = HfCheckpoint::open(in).weights_size(), out_bytes = 0;
    for (const auto & e : fs::recursive_directory_iterator(out))
        if (e.is_regular_file()) out_bytes += e.file_size();
    EXPECT_LT(out_bytes, in_weights);

    // A single-file model.safetensors beside the index: which one is the model?
    const std::string both = dir + "/both";
    fs::copy(in, both, fs::copy_options::recursive);
    fs::copy_file(shard, both + "/model.safetensors");
    const auto amb = test::run_reap({"prune", "-m", both, "--stats", dir + "/s.json", "--keep-ratio", "0.5", "-o",
                                     dir + "/out-both", "--no-progress"});
    EXPECT_EQ(amb.exit_code, 1);
    EXPECT_NE(amb.err.find(both + ": holds both model.safetensors and model.safetensors.index.json"), std::string::npos)
        << amb.err;
    EXPECT_NE(amb.err.find("ambiguous"), std::string::npos) << amb.err;
    EXPECT_FALSE(fs::exists(dir + "/out-both"));
}

// Issue 21: any file inside the input folder is an input (--plan-out over its config.json or a
// shard was written with exit 0), and the plan may not go inside the output folder either.
TEST(HfPrune, NoOutputLandsInsideTheInputFolder) {
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small("qwen3moe"));
    const std::string in    = export_hf(gguf, dir + "/in", synth::HfExperts::per_expert, 4u << 20);
    const std::string stats = stats_for(gguf, dir + "/s.json");
    std::string       shard;
    for (const auto & e : fs::directory_iterator(in))
        if (e.path().filename().string().rfind("model-00001-of-", 0) == 0) shard = e.path().string();
    ASSERT_FALSE(shard.empty());
    const std::vector<std::string> prune = {"prune", "-m",           in,    "--stats",
                                            stats,   "--keep-ratio", "0.5", "--no-progress"};
    for (const std::string & victim : {in + "/config.json", shard, in + "/../in/" + k_hf_index_name}) {
        const auto before = test::read_bytes(victim);
        auto       args   = prune;
        args.insert(args.end(), {"--dry-run", "--plan-out", victim});
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << victim << ": " << r.err;
        EXPECT_NE(r.err.find("is also an input"), std::string::npos) << r.err;
        EXPECT_TRUE(test::read_bytes(victim) == before) << victim << " was overwritten";
    }
    auto args = prune;
    args.insert(args.end(), {"-o", dir + "/out", "--plan-out", dir + "/out/plan.json"});
    const auto r = test::run_reap(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("also given as another output"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/out"));
}

TEST(HfPrune, InspectAndDryRunOnAFolder) {
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small("deepseek2"));
    const std::string hf = export_hf(gguf, dir + "/hf", synth::HfExperts::fused);
    const auto        r  = test::run_reap({"inspect", hf, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["architecture"], "deepseek2");
    EXPECT_EQ(j["n_expert"], 16);
    EXPECT_EQ(j["expert_groups"], 4);
    EXPECT_EQ(j["moe_layers"], json({1, 2}));
    EXPECT_EQ(j["pruned_sizes"][1]["kept_experts"], 8);

    const Plan p = test_plan(analyze_hf(HfCheckpoint::open(hf)).shape, 8);
    std::ofstream(dir + "/plan.json") << p.to_json().dump();
    const auto d = test::run_reap({"prune", "-m", hf, "--plan", dir + "/plan.json", "--dry-run"});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(json::parse(d.out)["kept_experts"], 8);
    EXPECT_FALSE(fs::exists(dir + "/out"));
    const auto w =
        test::run_reap({"prune", "-m", hf, "--plan", dir + "/plan.json", "-o", dir + "/out", "--no-progress"});
    ASSERT_EQ(w.exit_code, 0) << w.err;
    EXPECT_EQ(read_json(dir + "/out/config.json")["n_routed_experts"], 8);
    const auto again = test::run_reap({"prune", "-m", hf, "--plan", dir + "/plan.json", "-o", hf, "--no-progress"});
    EXPECT_EQ(again.exit_code, 1);
    EXPECT_NE(again.err.find("is also an input"), std::string::npos) << again.err;
}
