// The whole pipeline on every MoE architecture synth makes (one ctest entry each; label
// "matrix", left out of the sanitizer pass): synth -> llama.cpp decodes with finite logits ->
// profile invariants -> prune 50 % -> llama.cpp decodes the pruned model -> every kept slice
// byte-identical -> where the router renormalises, dropping never-routed experts leaves the
// logits unchanged. docs/ARCHITECTURES.md is the table this test backs.
#include "core/error.h"
#include "core/log.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_pruner.h"
#include "gguf/moe_layout.h"
#include "moe/expert_budget.h"
#include "profile/profiler.h"
#include "prune/planner.h"
#include "stats/criteria.h"
#include "support.h"
#include "synth/synth_presets.h"
#include "synth/vocab_import.h"

#include "llama.h"
#include "llama/llama_util.h"
#include "stats/expert_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

using namespace reap;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
const std::string k_text   = "Every token goes through the same experts as before: 1 + 1 = 2, and int main() {}.";

// llama.cpp's graph does not renormalise the selected weights on these (softmax over all
// experts, or sigmoid, without norm_w): the applied gate is the raw router output.
const std::set<std::string> k_unnormalised = {"llama4", "qwen2moe", "olmoe", "deepseek", "llada-moe"};

// Weight types rotate over the architectures, so slice copies of every type are checked.
ggml_type type_for(size_t i) {
    static const ggml_type t[] = {GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_Q4_K, GGML_TYPE_F32};
    return t[i % 4];
}

synth::Options matrix_options(const std::string & arch) {
    const auto &   all = synth::all_architectures();
    synth::Options o;
    o.arch          = arch;
    o.llama_builder = true;  // the hand-written four are covered by test_prune / test_profile
    o.n_ff          = 128;
    o.type          = type_for(size_t(std::find(all.begin(), all.end(), arch) - all.begin()));
    return o;
}

void expect_finite(const std::vector<std::vector<float>> & rows, const std::string & what) {
    ASSERT_GT(rows.size(), 3u) << what;
    for (const auto & r : rows) {
        for (float v : r) {
            ASSERT_TRUE(std::isfinite(v)) << what;
        }
    }
}

double max_abs(const std::vector<std::vector<float>> & rows) {
    double m = 1.0;
    for (const auto & r : rows)
        for (float v : r)
            m = std::max(m, double(std::fabs(v)));
    return m;
}

// Profile invariants on the statistics of `model`.
void check_profile(const std::string & arch, const GgufFile & in, const MoeLayout & m, const ProfileResult & r) {
    const auto    moe = in.get_uint_array("reap.synth.moe_layers");
    std::set<int> planted(moe.begin(), moe.end()), profiled, analysed;
    for (const auto & [il, L] : r.stats.layers)
        profiled.insert(il);
    for (int il : m.moe_layer_indices())
        analysed.insert(il);
    EXPECT_EQ(profiled, planted) << "every MoE layer present, and no other";
    EXPECT_EQ(analysed, planted);

    const double scale  = in.get_float(arch + ".expert_weights_scale").value_or(0.0);
    const double target = scale == 0.0 ? 1.0 : scale;
    for (const auto & [il, L] : r.stats.layers) {
        EXPECT_EQ(L.total_tokens, r.tokens) << "layer " << il;
        uint64_t counts = 0;
        double   gates = 0, raw = 0;
        for (uint32_t e = 0; e < m.n_expert; e++) {
            counts += L.count[e];
            gates += L.gate_sum[e];
            raw += L.raw_gate_sum[e];
        }
        EXPECT_EQ(counts, L.total_tokens * m.n_expert_used[size_t(il)]) << "layer " << il;
        if (k_unnormalised.count(arch)) {
            EXPECT_NEAR(gates, raw, 1e-5 * raw) << "layer " << il << ": applied gate is the raw router output";
        } else {
            EXPECT_NEAR(gates / double(L.total_tokens), target, 1e-4) << "layer " << il << ": applied gates sum";
        }
        // Planted dead experts: routed, but their output is ~1e-3 of a healthy one's.
        const auto          reap_score = L.reap();
        std::vector<double> healthy;
        std::set<uint32_t>  planted_experts;
        for (const char * kind : {"dead", "rare", "weak"})
            for (auto e : in.get_uint_array(synth::planted_key(il, kind)))
                planted_experts.insert(uint32_t(e));
        for (uint32_t e = 0; e < m.n_expert; e++)
            if (!planted_experts.count(e) && L.count[e] > 0) healthy.push_back(reap_score[e]);
        ASSERT_FALSE(healthy.empty());
        std::sort(healthy.begin(), healthy.end());
        const double median = healthy[healthy.size() / 2];
        for (auto e : in.get_uint_array(synth::planted_key(il, "dead"))) {
            EXPECT_LT(reap_score[e], 0.02 * median) << "layer " << il << " dead expert " << e;
        }
    }
}

// F32 weights and the text alone as calibration: drops the experts it never routed to (as many
// in every layer: the fewest any layer has); the text's logits must not move. (Quantized weights
// would round the router's float noise up through the activations' 8-bit blocks.)
void check_never_routed_removal(const std::string & arch, const std::string & dir, const std::string & text_file) {
    synth::Options o = matrix_options(arch);
    o.type           = GGML_TYPE_F32;
    // GroveMoE weights each adjugate expert by the router output of the expert whose index is
    // the adjugate's (llama.cpp's build_moe_ffn), so with groups of 2 any removal moves other
    // tokens' weights; with groups of 1 the adjugates follow their experts exactly.
    o.experts_per_group     = 1;
    const std::string model = dir + "/f32.gguf";
    synth::write_model(o, model);
    ProfileOptions po;
    po.model                = model;
    po.data                 = {text_file};
    po.output               = dir + "/f32-stats.json";
    po.progress             = false;
    po.n_threads            = 1;
    const ExpertStats stats = run_profile(po).stats;
    const GgufFile    in    = GgufFile::open(model);
    const MoeLayout   m     = analyze_moe(in);

    size_t n_drop = m.n_expert;
    for (const auto & [il, L] : stats.layers)
        n_drop = std::min<size_t>(n_drop, size_t(std::count(L.count.begin(), L.count.end(), uint64_t(0))));
    ASSERT_GT(n_drop, 0u) << "the planted rare experts were routed to";
    Plan p;
    p.criterion = "never-routed";
    p.n_expert  = m.n_expert;
    for (const auto & [il, L] : stats.layers) {
        LayerPlan lp;
        for (uint32_t e = 0; e < m.n_expert; e++)
            (L.count[e] == 0 && lp.dropped.size() < n_drop ? lp.dropped : lp.kept).push_back(e);
        lp.set_pruned_slots();
        p.layers[il] = lp;
    }
    p.keep_ratio = double(p.expert_count()) / m.n_expert;
    check_plan(p, m.shape(), "never-routed plan");
    prune_model(in, m, {{p, dir + "/never-routed.gguf"}}, false);
    const auto base  = test::decode_logits(model, k_text, 1, true);
    const auto after = test::decode_logits(dir + "/never-routed.gguf", k_text, 1, true);
    ASSERT_EQ(after.size(), base.size());
    double diff = 0;
    for (size_t i = 0; i < base.size(); i++)
        for (size_t j = 0; j < base[i].size(); j++)
            diff = std::max(diff, double(std::fabs(base[i][j] - after[i][j])));
    // Float noise of the smaller router is ~1e-6 with an F32 cache; a misaligned row or slice,
    // or a changed routing decision, moves logits by O(1e-2) and more.
    EXPECT_LT(diff, 1e-4 * max_abs(base)) << model;
}

class ArchMatrix : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() { log_init(LogLevel::error); }  // llama.cpp's load logs, 57 times over
};

TEST_P(ArchMatrix, SynthProfilePruneDecode) {
    const std::string arch  = GetParam();
    const std::string dir   = test::tmp_dir();
    const std::string model = dir + "/" + arch + ".gguf";
    synth::write_model(matrix_options(arch), model);

    expect_finite(test::decode_logits(model, k_text, 1), model);

    ProfileOptions po;
    po.model = model;
    // The logits text is calibration too, so "never routed" holds for the tokens compared.
    const std::string text_file = dir + "/text.txt";
    test::write_bytes(text_file, k_text.data(), k_text.size());
    po.data                = {text_file, k_sample};  // first: --max-samples keeps it
    po.output              = dir + "/stats.json";
    po.max_samples         = 6;
    po.n_ctx               = 256;
    po.progress            = false;
    po.n_threads           = 1;
    const ProfileResult r  = run_profile(po);
    const GgufFile      in = GgufFile::open(model);
    const MoeLayout     m  = analyze_moe(in);
    ASSERT_GT(r.tokens, 100u);
    check_profile(arch, in, m, r);

    const uint32_t kept = kept_count_for_ratio(m.shape(), 0.5);
    const Plan     plan = make_plan(r.stats, m.shape(), Criterion::reap, kept, 42);
    prune_model(in, m, {{plan, dir + "/half.gguf"}}, false);
    const GgufFile half = GgufFile::open(dir + "/half.gguf");
    EXPECT_EQ(analyze_moe(half).n_expert, kept);
    test::expect_kept_slices(in, m, half, kept);
    expect_finite(test::decode_logits(dir + "/half.gguf", k_text, 1), dir + "/half.gguf");

    if (!k_unnormalised.count(arch)) {
        check_never_routed_removal(arch, dir, text_file);
    }
}

INSTANTIATE_TEST_SUITE_P(AllArchs, ArchMatrix, ::testing::ValuesIn(synth::all_architectures()),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             for (auto & c : n)
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             return n;
                         });

}  // namespace

namespace {

// The acceptance case of real tokenizers: a qwen3moe with Qwen2's 151,936-token vocabulary goes
// through profile (chat samples rendered by the vocabulary's own chat template), prune and eval.
TEST(RealVocabulary, Qwen3MoeWithQwen2VocabProfilesPrunesAndEvaluates) {
    if (synth::vocab_dir().empty()) {
        GTEST_SKIP() << "llama.cpp's source tree (models/ggml-vocab-qwen2.gguf) is not here; set REAP_LLAMA_SOURCE";
    }
    const std::string dir   = test::tmp_dir();
    const std::string model = dir + "/qwen3moe-qwen2vocab.gguf";
    synth::Options    o;
    o.n_layer          = 2;
    o.vocab            = "qwen2";
    const auto summary = synth::write_model(o, model);
    EXPECT_EQ(summary["n_vocab"], 151936);

    const std::string chat = dir + "/chat.jsonl";
    const std::string msgs =
        R"([{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}])";
    {
        std::string line = "{\"messages\": " + msgs + "}\n";
        test::write_bytes(chat, line.data(), line.size());
    }
    const auto prof =
        test::run_reap({"profile", "-m", model, "--data", chat, "-o", dir + "/stats.json", "--no-progress", "-t", "1"});
    ASSERT_EQ(prof.exit_code, 0) << prof.err;

    // The tokens profiled are the vocabulary's template rendering, special tokens parsed: the
    // Qwen2 template writes <|im_start|>/<|im_end|> around each turn (one token each).
    const GgufFile    vocab_file = GgufFile::open(synth::find_vocab("qwen2"));
    const std::string tmpl       = vocab_file.get_str("tokenizer.chat_template");
    ASSERT_NE(tmpl.find("<|im_start|>"), std::string::npos);
    const auto                      parsed = nlohmann::json::parse(msgs);
    std::vector<std::string>        roles, contents;
    std::vector<llama_chat_message> chat_msgs;
    for (const auto & m : parsed) {
        roles.push_back(m["role"]);
        contents.push_back(m["content"]);
    }
    for (size_t i = 0; i < roles.size(); i++)
        chat_msgs.push_back({roles[i].c_str(), contents[i].c_str()});
    std::vector<char> buf(4096);
    const int32_t     n = llama_chat_apply_template(tmpl.c_str(), chat_msgs.data(), chat_msgs.size(), false, buf.data(),
                                                    int32_t(buf.size()));
    ASSERT_GT(n, 0);
    const std::string rendered(buf.data(), size_t(n));
    EXPECT_EQ(rendered.rfind("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", 0), 0u) << rendered;
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only         = true;
    llama_model * vm      = llama_model_load_from_file(model.c_str(), mp);
    ASSERT_NE(vm, nullptr);
    const auto ids = tokenize(llama_model_get_vocab(vm), rendered, true, true);
    const auto im  = tokenize(llama_model_get_vocab(vm), "<|im_start|>", false, true);
    llama_model_free(vm);
    EXPECT_EQ(im, std::vector<llama_token>{151644}) << "Qwen2's <|im_start|> is one special token";
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 151644), 3);
    const ExpertStats s = ExpertStats::load(dir + "/stats.json");
    EXPECT_EQ(s.meta["calibration"][0]["tokens"].get<uint64_t>(), ids.size());
    EXPECT_EQ(s.layers.begin()->second.total_tokens, ids.size());

    const auto pr = test::run_reap({"prune", "-m", model, "--stats", dir + "/stats.json", "--keep-ratio", "0.5", "-o",
                                    dir + "/half.gguf", "--no-progress"});
    ASSERT_EQ(pr.exit_code, 0) << pr.err;
    const auto ev = test::run_reap({"eval", "-m", model, "--pruned", dir + "/half.gguf", "-f",
                                    std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt", "-c", "128", "--chunks",
                                    "2", "-o", dir + "/eval.json", "--no-progress", "-t", "1"});
    ASSERT_EQ(ev.exit_code, 0) << ev.err;
    const auto e = nlohmann::json::parse(test::read_bytes(dir + "/eval.json"));
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e[1]["model"], "half.gguf");
    EXPECT_GT(e[1]["tokens_scored"].get<int>(), 200);  // 2 windows of 128 tokens of Qwen2's BPE
    EXPECT_TRUE(std::isfinite(e[1]["kl_mean"].get<double>()));
    EXPECT_GT(e[1]["kl_mean"].get<double>(), 0.0);  // half the experts gone: the output moved
}

}  // namespace

namespace {

// Presets give released models' shapes; --layers cuts the depth. The grouped DeepSeek-V3 shape
// is built and run (13 s at 2 layers); the others' options are checked against the model cards.
TEST(Presets, ShapesOfReleasedModels) {
    const auto q = synth::preset_options("qwen3-30b-a3b");
    EXPECT_EQ(q.n_layer, 48);
    EXPECT_EQ(q.n_expert, 128);
    EXPECT_EQ(q.n_expert_used, 8);
    EXPECT_EQ(q.n_embd, 2048);
    EXPECT_EQ(q.n_ff, 768);
    EXPECT_EQ(q.vocab, "qwen2");
    const auto g = synth::preset_options("gpt-oss-20b");
    EXPECT_EQ(g.n_layer, 24);
    EXPECT_EQ(g.n_expert, 32);
    EXPECT_EQ(g.n_expert_used, 4);
    EXPECT_THROW(synth::preset_options("no-such-model"), Error);

    if (synth::vocab_dir().empty()) GTEST_SKIP() << "llama.cpp's models/ggml-vocab-deepseek-llm.gguf is not here";
    const std::string dir = test::tmp_dir();
    synth::Options    d   = synth::preset_options("deepseek-v3-small");
    d.n_layer             = 2;
    const auto s          = synth::write_model(d, dir + "/ds.gguf");
    EXPECT_EQ(s["n_expert"], 256);
    EXPECT_EQ(s["n_vocab"], 102400);
    const GgufFile  f = GgufFile::open(dir + "/ds.gguf");
    const MoeLayout m = analyze_moe(f);
    EXPECT_EQ(m.n_expert_groups, 8u);
    EXPECT_EQ(m.n_group_used, 4u);
    expect_finite(test::decode_logits(dir + "/ds.gguf", k_text, 1), "deepseek-v3-small");
}

}  // namespace
