// profile --merge-stats: the expert-output Gram graph (profile/expert_output_gram.h) against a
// naive host loop on CPU-backend tensors (separate and fused gate/up, with and without biases,
// F32 and F16 weights); the token sample; the Grams of a profile of the committed model
// (symmetric, PSD, positive diagonals, every token in the router Gram), two shards merged equal
// to the whole run, the stats file read back strictly, resume mismatches refused, and a plain
// profile without them.
#include "core/error.h"
#include "profile/expert_output_gram.h"
#include "stats/expert_stats.h"
#include "support.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

using namespace reap;

namespace {

const std::string k_model  = std::string(REAP_SOURCE_DIR) + "/data/models/tiny-moe-q8_0.gguf";
const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

// Tensors in one CPU backend buffer, with their values kept for the host reference.
struct CpuTensors {
    ggml_context *                                            ctx = nullptr;
    ggml_backend_buffer_t                                     buf = nullptr;
    std::vector<std::pair<ggml_tensor *, std::vector<float>>> values;
    CpuTensors() {
        ggml_init_params p{ggml_tensor_overhead() * 16, nullptr, true};
        ctx = ggml_init(p);
    }
    ggml_tensor * add(const char * name, ggml_type type, int64_t a, int64_t b, int64_t c, std::mt19937 & rng,
                      float scale) {
        ggml_tensor * t = ggml_new_tensor_3d(ctx, type, a, b, c);
        ggml_set_name(t, name);
        std::normal_distribution<float> nd(0.0f, scale);
        std::vector<float>              v(size_t(a * b * c));
        for (float & x : v)
            x = type == GGML_TYPE_F16 ? ggml_fp16_to_fp32(ggml_fp32_to_fp16(nd(rng))) : nd(rng);  // exact in F16
        values.emplace_back(t, v);
        return t;
    }
    void upload() {
        ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        buf                    = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(cpu));
        for (auto & [t, v] : values) {
            if (t->type == GGML_TYPE_F16) {
                std::vector<ggml_fp16_t> h(v.size());
                for (size_t i = 0; i < v.size(); i++)
                    h[i] = ggml_fp32_to_fp16(v[i]);
                ggml_backend_tensor_set(t, h.data(), 0, ggml_nbytes(t));
            } else {
                ggml_backend_tensor_set(t, v.data(), 0, ggml_nbytes(t));
            }
        }
    }
    const std::vector<float> & of(const ggml_tensor * t) const {
        for (const auto & [u, v] : values)
            if (u == t) return v;
        throw std::runtime_error("no such tensor");
    }
    ~CpuTensors() {
        if (buf != nullptr) ggml_backend_buffer_free(buf);
        ggml_free(ctx);
    }
};

struct GramCase {
    bool      fused  = false;
    bool      biases = false;
    ggml_type type   = GGML_TYPE_F32;
};

// Builds random weights, runs the graph on sampled tokens, and compares with the host loop.
void check_gram(const GramCase & c) {
    const int64_t    n_embd = 24, n_ff = 10, E = 5, T = 9;
    std::mt19937     rng(7);
    CpuTensors       ts;
    ExpertFfnTensors w;
    ggml_tensor *    x = ts.add("x", GGML_TYPE_F32, n_embd, 1, T, rng, 1.0f);
    if (c.fused) {
        w.gate_up = ts.add("gate_up", c.type, n_embd, 2 * n_ff, E, rng, 0.3f);
        if (c.biases) w.gate_up_b = ts.add("gate_up_b", GGML_TYPE_F32, 2 * n_ff, E, 1, rng, 0.2f);
    } else {
        w.gate = ts.add("gate", c.type, n_embd, n_ff, E, rng, 0.3f);
        w.up   = ts.add("up", c.type, n_embd, n_ff, E, rng, 0.3f);
        if (c.biases) {
            w.gate_b = ts.add("gate_b", GGML_TYPE_F32, n_ff, E, 1, rng, 0.2f);
            w.up_b   = ts.add("up_b", GGML_TYPE_F32, n_ff, E, 1, rng, 0.2f);
        }
    }
    w.down = ts.add("down", c.type, n_ff, n_embd, E, rng, 0.3f);
    if (c.biases) w.down_b = ts.add("down_b", GGML_TYPE_F32, n_embd, E, 1, rng, 0.2f);
    ts.upload();

    const std::vector<int32_t> tokens = merge_sample_tokens(T, 4);
    ASSERT_EQ(tokens, (std::vector<int32_t>{1, 3, 5, 7}));
    std::vector<float>                    gates(tokens.size() * size_t(E));
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    for (float & g : gates)
        g = ud(rng);

    std::vector<double> gram(size_t(E * E), 0.5);  // adds to what is there
    ExpertOutputGram    og;
    og.accumulate(w, x, tokens, gates, gram);

    // Host reference: f_e(x) = down_e(silu(gate_e x + bg) * (up_e x + bu)) + bd, in double.
    const auto & xv = ts.of(x);
    auto         at = [&](const ggml_tensor * t, int64_t i0, int64_t i1, int64_t i2) {
        const auto & v = ts.of(t);
        return double(v[size_t((i2 * t->ne[1] + i1) * t->ne[0] + i0)]);
    };
    std::vector<double> want(size_t(E * E), 0.5);
    for (size_t s = 0; s < tokens.size(); s++) {
        std::vector<std::vector<double>> f(size_t(E), std::vector<double>(size_t(n_embd), 0.0));
        for (int64_t e = 0; e < E; e++) {
            std::vector<double> h(static_cast<size_t>(n_ff), 0.0);
            for (int64_t r = 0; r < n_ff; r++) {
                double a = 0, b = 0;
                for (int64_t k = 0; k < n_embd; k++) {
                    const double xk = xv[size_t(tokens[s] * n_embd + k)];
                    a += xk * (c.fused ? at(w.gate_up, k, r, e) : at(w.gate, k, r, e));
                    b += xk * (c.fused ? at(w.gate_up, k, n_ff + r, e) : at(w.up, k, r, e));
                }
                if (c.biases) {
                    a += c.fused ? at(w.gate_up_b, r, e, 0) : at(w.gate_b, r, e, 0);
                    b += c.fused ? at(w.gate_up_b, n_ff + r, e, 0) : at(w.up_b, r, e, 0);
                }
                h[size_t(r)] = a / (1.0 + std::exp(-a)) * b;
            }
            for (int64_t o = 0; o < n_embd; o++) {
                double y = c.biases ? at(w.down_b, o, e, 0) : 0.0;
                for (int64_t r = 0; r < n_ff; r++)
                    y += h[size_t(r)] * at(w.down, r, o, e);
                f[size_t(e)][size_t(o)] = y * double(gates[s * size_t(E) + size_t(e)]);
            }
        }
        for (int64_t i = 0; i < E; i++)
            for (int64_t j = 0; j < E; j++) {
                double dot = 0;
                for (int64_t o = 0; o < n_embd; o++)
                    dot += f[size_t(i)][size_t(o)] * f[size_t(j)][size_t(o)];
                want[size_t(i * E + j)] += dot;
            }
    }
    double scale = 0;
    for (int64_t e = 0; e < E; e++)
        scale = std::max(scale, want[size_t(e * E + e)]);
    for (size_t i = 0; i < want.size(); i++)
        EXPECT_NEAR(gram[i], want[i], 1e-3 * scale) << "entry " << i;
    // The graph is not trivially right: the off-diagonal entries are not all equal.
    EXPECT_NE(want[1], want[2]);
}

TEST(MergeStatsGraph, SeparateGateUpMatchesHost) { check_gram({false, false, GGML_TYPE_F32}); }
TEST(MergeStatsGraph, FusedGateUpWithBiasesMatchesHost) { check_gram({true, true, GGML_TYPE_F32}); }
TEST(MergeStatsGraph, SeparateWithBiasesF16MatchesHost) { check_gram({false, true, GGML_TYPE_F16}); }

TEST(MergeStatsGraph, SampleIsSpreadAndDeterministic) {
    EXPECT_EQ(merge_sample_tokens(3, 16), (std::vector<int32_t>{0, 1, 2}));
    EXPECT_EQ(merge_sample_tokens(512, 4), (std::vector<int32_t>{64, 192, 320, 448}));
    EXPECT_TRUE(merge_sample_tokens(0, 4).empty());
    const auto s = merge_sample_tokens(17, 16);
    ASSERT_EQ(s.size(), 16u);
    for (size_t i = 1; i < s.size(); i++)
        EXPECT_LT(s[i - 1], s[i]);
}

// ---- through reap profile: the committed trained model (qwen3moe, 4 layers, 16 experts) --------

// One sample per decode (--no-pack): every micro-batch is the same in a whole run and its shards.
test::RunResult profile(const std::string & out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"profile",       "-m", k_model,     "--data",        k_sample, "-o", out,
                                     "--max-samples", "24", "--no-pack", "--no-progress", "-t",     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_reap(args);
}

// |G_ij| <= sqrt(G_ii G_jj) (Cauchy-Schwarz: every Gram is positive semi-definite), symmetric,
// positive diagonal.
void expect_gram(const std::vector<double> & G, size_t E, const char * what) {
    ASSERT_EQ(G.size(), E * E) << what;
    for (size_t i = 0; i < E; i++) {
        EXPECT_GT(G[i * E + i], 0.0) << what << " diagonal " << i;
        for (size_t j = 0; j < E; j++) {
            EXPECT_NEAR(G[i * E + j], G[j * E + i], 1e-9 * std::fabs(G[i * E + j]) + 1e-12) << what;
            EXPECT_LE(std::fabs(G[i * E + j]), std::sqrt(G[i * E + i] * G[j * E + j]) * (1 + 1e-6)) << what;
        }
    }
}

TEST(MergeStatsProfile, GramsOfTheTrainedModel) {
    const std::string dir = test::tmp_dir();
    const auto        r   = profile(dir + "/m.json", {"--merge-stats", "8"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ExpertStats s = ExpertStats::load(dir + "/m.json");
    ASSERT_EQ(s.meta.merge_stats, std::optional<uint32_t>(8u));
    ASSERT_EQ(s.layers.size(), 4u);
    for (const auto & [il, L] : s.layers) {
        ASSERT_TRUE(L.has_merge_stats()) << il;
        EXPECT_EQ(L.router_gram_tokens, L.total_tokens);
        EXPECT_EQ(L.merge_sample_per_batch, 8u);
        // 24 samples, one per micro-batch, at most 8 sampled tokens of each.
        EXPECT_GT(L.output_gram_tokens, 0u);
        EXPECT_LE(L.output_gram_tokens, 24u * 8u);
        expect_gram(L.router_gram, 16, "router_gram");
        expect_gram(L.output_gram, 16, "output_gram");
        const std::vector<double> c = L.output_similarity(), rc = L.router_similarity();
        for (size_t i = 0; i < 16; i++) {
            EXPECT_NEAR(c[i * 16 + i], 1.0, 1e-12);
            EXPECT_NEAR(rc[i * 16 + i], 1.0, 1e-12);
        }
    }
    // Milestones stay small: no Grams in them.
    for (const auto & m : s.milestones)
        for (const auto & [il, L] : m.layers)
            EXPECT_FALSE(L.has_merge_stats());
}

TEST(MergeStatsProfile, PlainProfileHasNone) {
    const std::string dir = test::tmp_dir();
    ASSERT_EQ(profile(dir + "/p.json", {}).exit_code, 0);
    const nlohmann::json j = nlohmann::json::parse(test::read_text(dir + "/p.json"));
    EXPECT_FALSE(j["_meta"].contains("merge_stats"));
    for (const auto & [k, v] : j.items())
        EXPECT_FALSE(v.contains("merge")) << k;
}

TEST(MergeStatsProfile, ShardsMergeToTheWholeRun) {
    const std::string dir = test::tmp_dir();
    ASSERT_EQ(profile(dir + "/whole.json", {"--merge-stats", "4"}).exit_code, 0);
    for (const char * i : {"1", "2"}) {
        const auto r = profile(dir + "/s" + i + ".json", {"--merge-stats", "4", "--shard", std::string(i) + "/2"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const auto r = test::run_reap({"merge", dir + "/s1.json", dir + "/s2.json", "-o", dir + "/merged.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ExpertStats m = ExpertStats::load(dir + "/merged.json"), w = ExpertStats::load(dir + "/whole.json");
    EXPECT_EQ(m.meta.merge_stats, std::optional<uint32_t>(4u));
    for (const auto & [il, W] : w.layers) {
        const LayerStats & M = m.layers.at(il);
        ASSERT_TRUE(M.has_merge_stats());
        EXPECT_EQ(M.router_gram_tokens, W.router_gram_tokens);
        EXPECT_EQ(M.output_gram_tokens, W.output_gram_tokens);
        for (size_t i = 0; i < W.router_gram.size(); i++) {
            EXPECT_NEAR(M.router_gram[i], W.router_gram[i], 1e-9 * std::fabs(W.router_gram[i]) + 1e-9) << i;
            EXPECT_NEAR(M.output_gram[i], W.output_gram[i], 1e-9 * std::fabs(W.output_gram[i]) + 1e-9) << i;
        }
    }
    // A run without the Grams merged in: the result has none (a part would pass for the whole).
    ASSERT_EQ(profile(dir + "/plain2.json", {"--shard", "2/2"}).exit_code, 0);
    ASSERT_EQ(test::run_reap({"merge", dir + "/s1.json", dir + "/plain2.json", "-o", dir + "/mixed.json"}).exit_code,
              0);
    const ExpertStats mixed = ExpertStats::load(dir + "/mixed.json");
    EXPECT_FALSE(mixed.meta.merge_stats.has_value());
    for (const auto & [il, L] : mixed.layers)
        EXPECT_FALSE(L.has_merge_stats());
}

TEST(MergeStatsProfile, ResumeNeedsTheSameMergeStats) {
    const std::string dir = test::tmp_dir();
    ASSERT_EQ(profile(dir + "/m.json", {"--merge-stats", "8"}).exit_code, 0);
    auto r = profile(dir + "/m.json", {"--resume"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("saved with --merge-stats 8: resume with --merge-stats 8 too"), std::string::npos) << r.err;
    r = profile(dir + "/m.json", {"--resume", "--merge-stats", "4"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("resume with --merge-stats 8"), std::string::npos) << r.err;
    r = profile(dir + "/m.json", {"--resume", "--merge-stats", "8"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(profile(dir + "/p.json", {}).exit_code, 0);
    r = profile(dir + "/p.json", {"--resume", "--merge-stats", "8"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("saved without --merge-stats"), std::string::npos) << r.err;
}

TEST(MergeStatsProfile, UsageErrors) {
    const std::string dir = test::tmp_dir();
    for (const char * bad : {"0", "-1", "x", "08"}) {
        const auto r = profile(dir + "/u.json", {"--merge-stats", bad});
        EXPECT_EQ(r.exit_code, 2) << bad << r.err;
        EXPECT_NE(r.err.find("--merge-stats"), std::string::npos) << r.err;
    }
    const auto r = profile(dir + "/u.json", {"--merge-stats", "4", "--no-collect"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST(MergeStatsProfile, OtherActivationsAreRefused) {
    synth::Options o;
    o.arch                = "gpt-oss";  // SwiGLU-OAI experts with biases
    const std::string dir = test::tmp_dir();
    const auto r = test::run_reap({"profile", "-m", test::synth_model(o), "--data", k_sample, "-o", dir + "/g.json",
                                   "--max-samples", "2", "--merge-stats", "4", "--no-progress"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("--merge-stats does not support architecture gpt-oss"), std::string::npos) << r.err;
}

// ---- the stats file: read back strictly ------------------------------------------------------------

TEST(MergeStatsFile, HostileMergeObjectsAreErrors) {
    LayerStats L(2);
    L.total_tokens = 3;
    L.count        = {1, 2};
    L.enable_merge_stats(4);
    L.router_gram             = {4, 1, 1, 2};
    L.output_gram             = {1, 0.5, 0.5, 1};
    L.router_gram_tokens      = 3;
    L.output_gram_tokens      = 2;
    const nlohmann::json good = layer_to_json(L);
    const LayerStats     back = layer_from_json(good, "f.json", "0");
    EXPECT_EQ(back.router_gram, L.router_gram);
    EXPECT_EQ(back.output_gram, L.output_gram);
    EXPECT_EQ(back.output_gram_tokens, 2u);
    EXPECT_EQ(back.merge_sample_per_batch, 4u);
    const std::vector<double> c = back.router_similarity();
    EXPECT_NEAR(c[1], 1 / std::sqrt(8.0), 1e-15);

    auto bad = [&](const std::function<void(nlohmann::json &)> & edit, const char * msg) {
        nlohmann::json j = good;
        edit(j);
        try {
            layer_from_json(j, "f.json", "0");
            ADD_FAILURE() << "accepted: " << j["merge"].dump();
        } catch (const Error & e) {
            EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
        }
    };
    bad([](nlohmann::json & j) { j["merge"] = 3; }, "'merge' must be an object");
    bad([](nlohmann::json & j) { j["merge"]["router_gram"].push_back(1); },
        "merge.router_gram must be an array of 2 x 2");
    bad([](nlohmann::json & j) { j["merge"]["output_gram"][1] = "x"; }, "not a finite number");
    bad([](nlohmann::json & j) { j["merge"]["output_gram"][1] = std::numeric_limits<double>::infinity(); },
        "not a finite number");
    bad([](nlohmann::json & j) { j["merge"]["router_gram"][3] = -1; }, "negative diagonal");
    bad([](nlohmann::json & j) { j["merge"].erase("output_gram"); }, "merge has no 'output_gram'");
    bad([](nlohmann::json & j) { j["merge"]["router_gram_tokens"] = 4; }, "router_gram_tokens must be an integer");
    bad([](nlohmann::json & j) { j["merge"]["output_gram_tokens"] = -1; }, "output_gram_tokens must be an integer");
    bad([](nlohmann::json & j) { j["merge"].erase("sample_per_batch"); }, "sample_per_batch");

    // merge(): both sides have them or the result has none.
    LayerStats both = back;
    both.merge(back);
    EXPECT_EQ(both.router_gram[0], 8.0);
    EXPECT_EQ(both.output_gram_tokens, 4u);
    LayerStats none(2);
    both.merge(none);
    EXPECT_FALSE(both.has_merge_stats());
    EXPECT_THROW(both.output_similarity(), Error);
}

}  // namespace
