// reap prune --imatrix: llama.cpp's importance matrix cut with the model (expert entries to the
// kept experts, in the kept order; everything else as it was), accepted by llama-quantize without
// a warning, refused when it is another model's; and the imatrix criteria, which rank experts
// from an importance matrix alone.
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "gguf/imatrix_file.h"
#include "gguf/imatrix_prune.h"
#include "gguf/moe_layout.h"
#include "stats/criteria.h"
#include "support.h"
#include "support_models.h"

#include "ggml.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

using namespace reap;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

synth::Options small(const std::string & arch, ggml_type type = GGML_TYPE_F16) {
    synth::Options o;
    o.arch    = arch;
    o.type    = type;
    o.n_layer = test::fewest_layers(arch);
    return o;
}

// `reap profile --imatrix` of `model` over 8 calibration samples into `dir`: {stats, imatrix}.
std::pair<std::string, std::string> profile_with_imatrix(const std::string & model, const std::string & dir) {
    const std::string stats = dir + "/s.json", imatrix = dir + "/im.gguf";
    const auto r = test::run_reap({"profile", "-m", model, "--data", test::k_calibration, "--max-samples", "8", "-o",
                                   stats, "--imatrix", imatrix, "--no-progress"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return {stats, imatrix};
}

// "blk.3.ffn_up_exps.weight" -> 3 for an expert tensor's entry (routed or adjugate experts), -1 otherwise.
int expert_entry_layer(const std::string & name) {
    static const std::regex re(R"(blk\.(\d+)\.ffn_\w+_(ch)?exps\.weight)");
    std::smatch             m;
    return std::regex_match(name, m, re) ? std::stoi(m[1]) : -1;
}

// The rows of `e` for `keep`, as select_matrices would give them, compared value by value.
void expect_rows(const ImatrixEntry & in, const ImatrixEntry & out, const std::vector<uint32_t> & keep,
                 const std::string & name) {
    ASSERT_EQ(out.n_cols, in.n_cols) << name;
    ASSERT_EQ(out.n_mat(), keep.size()) << name;
    for (size_t k = 0; k < keep.size(); k++) {
        EXPECT_EQ(out.counts[k], in.counts[keep[k]]) << name << " matrix " << k;
        for (int64_t j = 0; j < in.n_cols; j++) {
            ASSERT_EQ(out.in_sum2[k * size_t(in.n_cols) + size_t(j)],
                      in.in_sum2[keep[k] * size_t(in.n_cols) + size_t(j)])
                << name << " matrix " << k << " column " << j;
        }
    }
}

// The "did not find weights for X" lines of a llama-quantize log, and whether it complained of a
// size mismatch or a missing matrix in a low-bit type. (Unused where the build found no llama-quantize.)
[[maybe_unused]] std::set<std::string> not_found(const std::string & log) {
    std::set<std::string>   out;
    static const std::regex re(R"(did not find weights for (\S+))");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it)
        out.insert((*it)[1]);
    return out;
}

#ifdef REAP_LLAMA_QUANTIZE
// llama-quantize --imatrix `imatrix` `model` -> Q4_0; the log, with "EXIT=<status>" at its end.
std::string quantize(const std::string & imatrix, const std::string & model, const std::string & out) {
    const std::string cmd =
        "{ '" REAP_LLAMA_QUANTIZE "' --imatrix '" + imatrix + "' '" + model + "' '" + out + "' Q4_0 1; echo EXIT=$?; }";
    return test::run_llama_tool(cmd, [](const std::string & log) {
        return log.find("EXIT=0") == std::string::npos || log.find("total time") != std::string::npos;
    });
}
#endif

class ImatrixPruneArch : public ::testing::TestWithParam<std::string> {};

// The pruned imatrix holds every entry of the input: an expert tensor's cut to the rows of the
// experts the plan keeps (GroveMoE's adjugate experts: those of the kept groups), in the kept
// order, with their counts; every other entry, the datasets and the chunk keys unchanged. One file
// for a split output. llama-quantize takes it with the pruned model without a warning the input's
// own quantization does not give.
TEST_P(ImatrixPruneArch, ExpertEntriesKeepTheKeptExpertsRowsAndQuantizeAccepts) {
    const std::string model     = test::synth_model(small(GetParam()));
    const std::string dir       = test::tmp_dir();
    const auto [stats, imatrix] = profile_with_imatrix(model, dir);
    const std::string pruned = dir + "/pruned.gguf", plan = dir + "/plan.json";
    const auto        r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o", pruned,
                                          "--imatrix", imatrix, "--plan-out", plan, "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string out = dir + "/pruned.imatrix.gguf";  // the default name
    ASSERT_TRUE(fs::exists(out)) << r.out;
    EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
    const json p = json::parse(test::read_text(plan));
    EXPECT_EQ(p["imatrix_file"], out);

    const Imatrix   in = read_imatrix(imatrix), cut = read_imatrix(out);
    const GgufFile  f = GgufFile::open(model);
    const MoeLayout m = analyze_moe(f);
    EXPECT_EQ(cut.datasets, in.datasets);
    EXPECT_EQ(cut.chunk_count, in.chunk_count);
    EXPECT_EQ(cut.chunk_size, in.chunk_size);
    ASSERT_EQ(cut.entries.size(), in.entries.size());
    int n_expert_entries = 0;
    for (const auto & [name, e] : in.entries) {
        ASSERT_TRUE(cut.entries.count(name)) << name;
        const ImatrixEntry & c  = cut.entries.at(name);
        const int            il = expert_entry_layer(name);
        if (il < 0) {
            EXPECT_EQ(c.n_cols, e.n_cols) << name;
            EXPECT_EQ(c.in_sum2, e.in_sum2) << name;
            EXPECT_EQ(c.counts, e.counts) << name;
            continue;
        }
        n_expert_entries++;
        std::vector<uint32_t> keep = p["layers"][std::to_string(il)]["kept"].get<std::vector<uint32_t>>();
        if (name.find("_chexps") != std::string::npos) {  // adjugate experts: those of the kept groups
            std::vector<uint32_t> groups;
            for (uint32_t k : keep) {
                const uint32_t g = k / m.experts_per_chunk;
                if (groups.empty() || groups.back() != g) groups.push_back(g);
            }
            keep = groups;
        }
        expect_rows(e, c, keep, name);
    }
    EXPECT_GE(n_expert_entries, 2 * 2) << "at least up and down of two MoE layers";

    // A split output: one importance matrix, the same.
    const std::string split = dir + "/split.gguf";
    const auto        s = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o", split,
                                          "--split-max-size", "300K", "--imatrix", imatrix, "--no-progress"});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_FALSE(fs::exists(split));
    EXPECT_EQ(test::read_bytes(dir + "/split.imatrix.gguf"), test::read_bytes(out));

#ifdef REAP_LLAMA_QUANTIZE
    const std::string base_log = quantize(imatrix, model, dir + "/q-base.gguf");
    const std::string log      = quantize(out, pruned, dir + "/q.gguf");
    ASSERT_NE(log.find("EXIT=0"), std::string::npos) << log;
    ASSERT_NE(base_log.find("EXIT=0"), std::string::npos) << base_log;
    EXPECT_EQ(log.find("imatrix size"), std::string::npos) << log;
    EXPECT_EQ(log.find("Missing importance matrix"), std::string::npos) << log;
    // Only the tensors the input's own imatrix has no entry for (token_embd, ...), none an expert tensor.
    EXPECT_EQ(not_found(log), not_found(base_log)) << log;
    for (const std::string & t : not_found(log))
        EXPECT_EQ(t.find("exps"), std::string::npos) << t;
    // Without the pruned imatrix it would not be accepted: the input's has the original expert count.
    const std::string bad = quantize(imatrix, pruned, dir + "/q-bad.gguf");
    EXPECT_EQ(bad.find("EXIT=0"), std::string::npos) << bad;
#else
    GTEST_SKIP() << "llama-quantize was not found at configure time";
#endif
}

INSTANTIATE_TEST_SUITE_P(Archs, ImatrixPruneArch, ::testing::Values("qwen3moe", "deepseek2", "grovemoe"));

// Several ratios: each output its own importance matrix, by default named after it, or from
// --imatrix-out with {keep}; a dry run writes none but names them in the plan.
TEST(ImatrixPrune, SeveralRatiosAndDryRun) {
    const std::string model     = test::synth_model(small("qwen3moe", GGML_TYPE_Q8_0));
    const std::string dir       = test::tmp_dir();
    const auto [stats, imatrix] = profile_with_imatrix(model, dir);
    auto r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.25,0.5", "-o", dir + "/p.gguf",
                             "--imatrix", imatrix, "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char * k : {"0.25", "0.50"}) {
        const Imatrix cut = read_imatrix(dir + "/p-keep" + k + ".imatrix.gguf");
        EXPECT_EQ(cut.entries.at("blk.0.ffn_down_exps.weight").n_mat(), std::string(k) == "0.25" ? 4u : 8u);
    }
    r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.25,0.5", "-o", dir + "/q.gguf",
                        "--imatrix", imatrix, "--imatrix-out", dir + "/im-{keep}.gguf", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/im-0.25.gguf"));
    EXPECT_TRUE(fs::exists(dir + "/im-0.50.gguf"));

    r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o", dir + "/d.gguf",
                        "--imatrix", imatrix, "--dry-run"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["imatrix_file"], dir + "/d.imatrix.gguf");
    EXPECT_FALSE(fs::exists(dir + "/d.imatrix.gguf"));
    EXPECT_FALSE(fs::exists(dir + "/d.gguf"));
}

// An importance matrix of another model (another synthetic model's; an entry renamed, widened,
// or with another expert count) is refused in one line naming it, and nothing is written; so is
// an output over the input, --imatrix on a Hugging Face folder (a usage error), --imatrix-out
// without --imatrix and an imatrix criterion with --stats or without --imatrix.
TEST(ImatrixPrune, AnotherModelsImatrixIsRefusedAndNothingWritten) {
    const std::string model = test::synth_model(small("qwen3moe", GGML_TYPE_Q8_0));
    const std::string dir   = test::tmp_dir();
    // Named variables, not a structured binding: the lambda below captures them (C++17).
    const auto        profiled = profile_with_imatrix(model, dir);
    const std::string stats = profiled.first, imatrix = profiled.second;
    synth::Options    other_o = small("qwen3moe", GGML_TYPE_Q8_0);
    other_o.n_ff              = 128;
    fs::create_directories(dir + "/other");
    const std::string other = profile_with_imatrix(test::synth_model(other_o), dir + "/other").second;

    const Imatrix good    = read_imatrix(imatrix);
    Imatrix       renamed = good, wide = good, experts = good;
    renamed.entries.emplace("blk.7.ffn_down_exps.weight", good.entries.at("blk.0.ffn_down_exps.weight"));
    ImatrixEntry & w = wide.entries.at("blk.1.attn_q.weight");
    w.n_cols *= 2;
    w.in_sum2.resize(w.in_sum2.size() * 2, 1.0);
    experts.entries.at("blk.1.ffn_up_exps.weight") =
        select_matrices(good.entries.at("blk.1.ffn_up_exps.weight"), {0, 1, 2, 3});
    write_imatrix(dir + "/renamed.gguf", renamed);
    write_imatrix(dir + "/wide.gguf", wide);
    write_imatrix(dir + "/experts.gguf", experts);

    const std::string out = dir + "/x.gguf", plan = dir + "/plan.json";
    auto              refused = [&](const std::vector<std::string> & extra, const std::string & says, int code = 1) {
        std::vector<std::string> args = {"prune", "-m", model, "--stats",    stats, "--keep-ratio",
                                         "0.5",   "-o", out,   "--plan-out", plan,  "--no-progress"};
        args.insert(args.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, code) << r.err;
        EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
        if (code == 1) {  // one error line (after the plan's log lines)
            const size_t at = r.err.find("reap: error: ");
            ASSERT_NE(at, std::string::npos) << r.err;
            EXPECT_EQ(r.err.find('\n', at) + 1, r.err.size()) << r.err;
        }
        for (const std::string & p : {out, plan, dir + "/x.imatrix.gguf"})
            EXPECT_FALSE(fs::exists(p)) << p << " written after: " << r.err;
    };
    refused({"--imatrix", other}, "another model");
    refused({"--imatrix", dir + "/renamed.gguf"}, "blk.7.ffn_down_exps.weight names no tensor");
    refused({"--imatrix", dir + "/wide.gguf"},
            "blk.1.attn_q.weight has 512 columns x 1 matrices, the tensor's input is 256 wide x 1");
    refused({"--imatrix", dir + "/experts.gguf"}, "blk.1.ffn_up_exps.weight has 4 matrices, the tensor 16 experts");
    refused({"--imatrix", imatrix, "--imatrix-out", imatrix}, "is also an input");
    refused({"--imatrix", imatrix, "--imatrix-out", out}, "also given as another output");
    refused({"--imatrix-out", dir + "/i.gguf"}, "give --imatrix", 2);
    refused({"--imatrix", imatrix, "--criterion", "imatrix-sum"}, "do not combine it with --stats", 2);

    const auto no_im =
        test::run_reap({"prune", "-m", model, "--keep-ratio", "0.5", "-o", out, "--criterion", "imatrix-mean"});
    EXPECT_EQ(no_im.exit_code, 2) << no_im.err;
    EXPECT_NE(no_im.err.find("give --imatrix FILE"), std::string::npos) << no_im.err;
    const auto reap_alone =
        test::run_reap({"prune", "-m", model, "--keep-ratio", "0.5", "-o", out, "--imatrix", imatrix});
    EXPECT_EQ(reap_alone.exit_code, 2) << reap_alone.err;
    EXPECT_NE(reap_alone.err.find("imatrix-sum or imatrix-mean"), std::string::npos) << reap_alone.err;

    // The model cannot be written (its folder is missing): its importance matrix, finished first,
    // does not appear either, and no temporary of it is left.
    const auto missing =
        test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o", dir + "/missing/x.gguf",
                        "--imatrix", imatrix, "--imatrix-out", dir + "/alone.imatrix.gguf", "--no-progress"});
    EXPECT_EQ(missing.exit_code, 1) << missing.err;
    for (const auto & entry : fs::directory_iterator(dir))
        EXPECT_EQ(entry.path().filename().string().find("alone"), std::string::npos) << entry.path();

    const std::string hf = dir + "/hf";
    fs::create_directories(hf);
    test::write_bytes(hf + "/config.json", "{}", 2);
    const auto h = test::run_reap(
        {"prune", "-m", hf, "--stats", stats, "--keep-ratio", "0.5", "-o", dir + "/hf-out", "--imatrix", imatrix});
    EXPECT_EQ(h.exit_code, 2) << h.err;
    EXPECT_NE(h.err.find("Hugging Face folder"), std::string::npos) << h.err;
    EXPECT_FALSE(fs::exists(dir + "/hf-out"));
}

// The imatrix criteria on a model with planted experts: from the importance matrix alone, the
// planted dead, weak and rare experts are the first to go (dead: down projection x1e-3, weak:
// x0.05, rare: hardly routed), under imatrix-sum and imatrix-mean alike; and the scores are
// S_e = Σ_j ‖W_down_e[:, j]‖² · in_sum2_e[j] over all tokens / over the expert's tokens.
TEST(ImatrixCriteria, PlantedDeadWeakAndRareExpertsArePrunedFirst) {
    synth::Options    o       = small("qwen3moe", GGML_TYPE_Q8_0);  // 16 experts, 2 dead, 2 rare, 2 weak per layer
    const std::string model   = test::synth_model(o);
    const std::string dir     = test::tmp_dir();
    const std::string imatrix = profile_with_imatrix(model, dir).second;
    const GgufFile    f       = GgufFile::open(model);
    const MoeLayout   m       = analyze_moe(f);
    for (const char * c : {"imatrix-sum", "imatrix-mean"}) {
        const std::string plan = dir + "/" + c + ".json", out = dir + "/" + c + ".gguf";
        const auto r = test::run_reap({"prune", "-m", model, "--imatrix", imatrix, "--criterion", c, "--prune", "6",
                                       "-o", out, "--plan-out", plan, "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_TRUE(fs::exists(out));
        EXPECT_TRUE(fs::exists(dir + "/" + c + ".imatrix.gguf"));
        const json p = json::parse(test::read_text(plan));
        EXPECT_EQ(p["criterion"], c);
        for (int il : m.moe_layer_indices()) {
            std::set<uint32_t> planted;
            for (const char * kind : {"dead", "weak", "rare"})
                for (uint64_t e : f.get_uint_array(synth::planted_key(il, kind)))
                    planted.insert(uint32_t(e));
            const auto               d = p["layers"][std::to_string(il)]["dropped"].get<std::vector<uint32_t>>();
            const std::set<uint32_t> dropped(d.begin(), d.end());
            if (std::string(c) == "imatrix-sum") {
                EXPECT_EQ(dropped, planted) << c << " layer " << il;
            } else {
                // A mean per routed token: a rare expert routed a few times is as strong as any; the
                // dead and weak ones are what the mean must find.
                for (const char * kind : {"dead", "weak"})
                    for (uint64_t e : f.get_uint_array(synth::planted_key(il, kind)))
                        EXPECT_TRUE(dropped.count(uint32_t(e))) << c << " keeps " << kind << " expert " << e;
            }
        }
    }

    // The sums by hand: the column norms of each expert's down projection, dequantized here.
    const Imatrix     im = read_imatrix(imatrix);
    const ExpertStats s  = imatrix_expert_stats(im, imatrix, f, m);
    for (int il : m.moe_layer_indices()) {
        const std::string    name = "blk." + std::to_string(il) + ".ffn_down_exps.weight";
        const TensorInfo &   t    = *f.find_tensor(name);
        const ImatrixEntry & e    = im.entries.at(name);
        const LayerStats &   L    = s.layers.at(il);
        const size_t         row  = ggml_row_size(t.type, t.ne[0]);
        std::vector<uint8_t> bytes(row);
        std::vector<float>   v(size_t(t.ne[0]));
        double               all = 0;
        for (int64_t x = 0; x < t.ne[2]; x++) {
            std::vector<double> norm(size_t(t.ne[0]), 0.0);
            for (int64_t i = 0; i < t.ne[1]; i++) {
                f.read(t, uint64_t(x * t.ne[1] + i) * row, bytes.data(), row);
                ggml_get_type_traits(t.type)->to_float(bytes.data(), v.data(), t.ne[0]);
                for (int64_t j = 0; j < t.ne[0]; j++)
                    norm[size_t(j)] += double(v[size_t(j)]) * v[size_t(j)];
            }
            double want = 0;
            for (int64_t j = 0; j < t.ne[0]; j++)
                want += norm[size_t(j)] * e.in_sum2[size_t(x * t.ne[0] + j)];
            EXPECT_NEAR(L.imatrix_sum[size_t(x)], want, 1e-9 * want) << name << " expert " << x;
            EXPECT_EQ(L.count[size_t(x)], uint64_t(e.counts[size_t(x)]));
            all += e.counts[size_t(x)];
        }
        EXPECT_EQ(L.total_tokens, uint64_t(all / m.n_expert_used[size_t(il)] + 0.5));
        const auto sum  = expert_scores(L, Criterion::imatrix_sum, 0, il),
                   mean = expert_scores(L, Criterion::imatrix_mean, 0, il);
        for (size_t x = 0; x < L.n_expert(); x++) {
            EXPECT_DOUBLE_EQ(sum[x], L.imatrix_sum[x] / double(L.total_tokens));
            EXPECT_DOUBLE_EQ(mean[x], L.count[x] ? L.imatrix_sum[x] / double(L.count[x]) : 0.0);
        }
    }
}

}  // namespace
