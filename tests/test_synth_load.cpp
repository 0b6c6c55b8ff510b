// Every synthetic architecture and weight type: llama.cpp loads the file and decodes a prompt
// with finite, input-dependent logits.
#include "stats/expert_stats.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth_presets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/error.h"

using namespace reap;

namespace {

// Small variants keep the 5 x 4 matrix fast; nemotron_h_moe needs 6 layers for its full
// Mamba/MoE/attention pattern.
synth::Options small(const std::string & arch, ggml_type type) {
    synth::Options o;
    o.arch          = arch;
    o.type          = type;
    o.n_layer       = test::fewest_layers(arch);
    o.n_expert      = 8;
    o.n_expert_used = 2;
    return o;
}

void expect_runs(const std::string & path) {
    const auto rows =
        test::decode_logits(path, "The quick brown fox: 2x + 3 = 11, int main() {} \xC3\xA9\xE2\x82\xAC!");
    ASSERT_GT(rows.size(), 5u);
    for (const auto & r : rows) {
        for (float v : r) {
            ASSERT_TRUE(std::isfinite(v)) << path;
        }
    }
    // The logits depend on the input: the last two positions differ.
    double diff = 0;
    for (size_t i = 0; i < rows.back().size(); i++) {
        diff += std::fabs(rows.back()[i] - rows[rows.size() - 2][i]);
    }
    EXPECT_GT(diff, 1e-3) << path;
}

class SynthLoad : public ::testing::TestWithParam<std::tuple<std::string, ggml_type>> {};

TEST_P(SynthLoad, LlamaCppLoadsAndDecodes) {
    const auto [arch, type] = GetParam();
    expect_runs(test::synth_model(small(arch, type)));
}

INSTANTIATE_TEST_SUITE_P(AllArchsAllTypes, SynthLoad,
                         ::testing::Combine(::testing::ValuesIn(synth::architectures()),
                                            ::testing::Values(GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0,
                                                              GGML_TYPE_Q4_K)),
                         [](const auto & param_info) {
                             std::string n =
                                 std::get<0>(param_info.param) + "_" + ggml_type_name(std::get<1>(param_info.param));
                             for (auto & c : n) {
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             }
                             return n;
                         });

class SynthDefaults : public ::testing::TestWithParam<std::string> {};

// The default models (what the demo and benchmarks use) load and run too.
TEST_P(SynthDefaults, LlamaCppLoadsAndDecodes) {
    synth::Options o;
    o.arch = GetParam();
    expect_runs(test::synth_model(o));
}

INSTANTIATE_TEST_SUITE_P(AllArchs, SynthDefaults, ::testing::ValuesIn(synth::architectures()),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             for (auto & c : n) {
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             }
                             return n;
                         });

TEST(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
    const std::string dir = test::tmp_dir();
    for (const auto & arch : synth::architectures()) {
        synth::Options o;
        o.arch    = arch;
        o.n_layer = arch == "nemotron_h_moe" ? 6 : 3;
        synth::write_model(o, dir + "/a.gguf");
        synth::write_model(o, dir + "/b.gguf");
        o.seed = 43;
        synth::write_model(o, dir + "/c.gguf");
        const auto a = test::read_bytes(dir + "/a.gguf"), b = test::read_bytes(dir + "/b.gguf"),
                   c = test::read_bytes(dir + "/c.gguf");
        ASSERT_FALSE(a.empty());
        EXPECT_TRUE(a == b) << arch << ": same seed gave different files";
        EXPECT_EQ(a.size(), c.size()) << arch;
        EXPECT_FALSE(a == c) << arch << ": a different seed gave the same file";
    }
}

// Models laid out by llama.cpp's own builder (llama_model_init_from_user): every weight type
// loads and decodes, the planted ground truth is recorded, and the seed alone decides the bytes.
class SynthBuilder : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthBuilder, EveryTypeRunsAndTheSeedDecidesTheBytes) {
    const std::string dir = test::tmp_dir();
    synth::Options    o;
    o.arch          = GetParam();
    o.llama_builder = true;
    o.n_expert      = 8;
    o.n_expert_used = 2;
    for (ggml_type t : synth::weight_types()) {
        o.type                 = t;
        const std::string path = dir + "/" + ggml_type_name(t) + ".gguf";
        const auto        summ = synth::write_model(o, path);
        EXPECT_EQ(summ["layout"], "llama.cpp model builder");
        EXPECT_FALSE(summ["moe_layers"].empty());
        expect_runs(path);
    }
    o.type = GGML_TYPE_Q4_K;
    synth::write_model(o, dir + "/again.gguf");
    o.seed = 7;
    synth::write_model(o, dir + "/other.gguf");
    const auto a = test::read_bytes(dir + "/" + ggml_type_name(GGML_TYPE_Q4_K) + ".gguf"),
               b = test::read_bytes(dir + "/again.gguf"), c = test::read_bytes(dir + "/other.gguf");
    EXPECT_TRUE(a == b) << "same seed, different bytes";
    EXPECT_EQ(a.size(), c.size());
    EXPECT_FALSE(a == c) << "another seed, the same bytes";
}

// A plain attention MoE, a hybrid with recurrent layers, a latent-attention one.
INSTANTIATE_TEST_SUITE_P(Builder, SynthBuilder, ::testing::Values("qwen3moe", "lfm2moe", "glm4moe"),
                         [](const auto & param_info) { return std::string(param_info.param); });

TEST(Synth, ListNamesEveryArchitecture) {
    const auto r = test::run_reap({"synth", "--list"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const auto & a : synth::all_architectures()) {
        EXPECT_NE(r.out.find(a + " "), std::string::npos) << a;
    }
    size_t lines = 0, preset_lines = 0;
    for (size_t at = 0; at < r.out.size(); at = r.out.find('\n', at) + 1) {
        if (r.out.find('\n', at) == std::string::npos) break;
        lines++;
        preset_lines += r.out.compare(at, 7, "preset ") == 0;
    }
    EXPECT_EQ(lines - preset_lines, synth::all_architectures().size());
    EXPECT_EQ(preset_lines, synth::presets().size());
    const auto no_output = test::run_reap({"synth", "--arch", "glm4moe"});
    EXPECT_EQ(no_output.exit_code, 2) << "--output is required unless --list";
}

TEST(Synth, RejectsImpossibleOptions) {
    const std::string dir = test::tmp_dir();
    auto              bad = [&](synth::Options o) {
        EXPECT_THROW(synth::write_model(o, dir + "/x.gguf"), Error);
        EXPECT_FALSE(std::ifstream(dir + "/x.gguf").good()) << "no output may be left behind";
    };
    synth::Options o;
    o.n_embd = 100;
    bad(o);
    o      = {};
    o.arch = "mamba";
    bad(o);
    o               = {};
    o.n_expert      = 4;
    o.n_expert_used = 5;
    bad(o);
    o        = {};
    o.n_dead = 10;
    bad(o);
    o         = {};
    o.arch    = "deepseek2";
    o.n_layer = 26;
    bad(o);
}

}  // namespace

namespace {

// /usr/bin/time -v's "Maximum resident set size" of `reap args...`, in KiB; -1 without GNU time.
long reap_peak_rss_kb(const std::vector<std::string> & args, const std::string & log) {
    if (access("/usr/bin/time", X_OK) != 0) return -1;
    std::vector<std::string> a = {"-v", "-o", log, REAP_BIN};
    a.insert(a.end(), args.begin(), args.end());
    const auto r = test::run_program("/usr/bin/time", a);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string text = test::read_text(log);
    const auto        at   = text.find("Maximum resident set size (kbytes): ");
    return at == std::string::npos ? -1 : std::stol(text.substr(at + 36));
}

}  // namespace

// The released shapes are written from synth's own tensor table, slice by slice: the preset's
// real attention (32 query heads and 4 key/value heads, 128 wide), no F32 copy laid out by
// llama.cpp first (at full depth that copy is ~120 GB). Cut here to 2 layers, 16 experts and
// the built-in vocabulary; the seed alone decides the bytes and llama.cpp decodes it.
TEST(SynthScale, PresetKeepsItsHeadsAndNeedsNoBuilderCopy) {
    const std::string dir = test::tmp_dir();
    synth::Options    o   = synth::preset_options("qwen3-30b-a3b");
    o.n_layer = 2, o.n_expert = 16, o.n_ff = 256, o.vocab = "", o.type = GGML_TYPE_Q4_K;
    const auto s = synth::write_model(o, dir + "/a.gguf");
    EXPECT_EQ(s["layout"], "hand-written");
    synth::write_model(o, dir + "/b.gguf");
    EXPECT_TRUE(test::read_bytes(dir + "/a.gguf") == test::read_bytes(dir + "/b.gguf")) << "same seed, other bytes";

    const GgufFile f = GgufFile::open(dir + "/a.gguf");
    EXPECT_EQ(f.get_uint("qwen3moe.attention.head_count"), 32u);
    EXPECT_EQ(f.get_uint("qwen3moe.attention.head_count_kv"), 4u);
    EXPECT_EQ(f.get_uint("qwen3moe.attention.key_length"), 128u);
    const TensorInfo * q = f.find_tensor("blk.1.attn_q.weight");
    const TensorInfo * k = f.find_tensor("blk.1.attn_k.weight");
    const TensorInfo * d = f.find_tensor("blk.1.ffn_down_exps.weight");
    ASSERT_TRUE(q && k && d);
    EXPECT_EQ(q->ne[1], 32 * 128);
    EXPECT_EQ(k->ne[1], 4 * 128);
    EXPECT_EQ(d->type, GGML_TYPE_Q4_K);
    expect_runs(dir + "/a.gguf");
}

// A model whose expert tensors take the row-dictionary path (synth_fill.h: 2^26 values or more;
// here 1024 x 512 x 128 experts in Q4_K, ~113 MB a layer): the peak RSS of `reap synth` does not
// grow with the model (twice the layers adds far less than the file grew), the same seed gives
// the same bytes, llama.cpp decodes it and a profile still finds the planted dead, rare and weak
// experts.
TEST(SynthScale, DictionaryPathStreamsKeepsThePlantedExpertsAndRuns) {
    const std::string dir  = test::tmp_dir();
    auto              args = [&](int layers, const std::string & name) {
        return std::vector<std::string>{
            "synth",  "--arch", "qwen3moe",      "--layers", std::to_string(layers), "--n-embd", "1024",
            "--n-ff", "512",    "--n-expert",    "128",      "--n-expert-used",      "8",        "--type",
            "Q4_K",   "-o",     dir + "/" + name};
    };
    const long small = reap_peak_rss_kb(args(2, "m2.gguf"), dir + "/time2.log");
    const long large = reap_peak_rss_kb(args(4, "m4.gguf"), dir + "/time4.log");
    if (small < 0 || large < 0) GTEST_SKIP() << "no GNU time (/usr/bin/time -v)";
    const long small_file = long(std::filesystem::file_size(dir + "/m2.gguf") / 1024);
    const long large_file = long(std::filesystem::file_size(dir + "/m4.gguf") / 1024);
    ASSERT_GT(large_file - small_file, 200 * 1024);  // two more layers of ~113 MB
    // Under AddressSanitizer freed memory sits in its quarantine and every byte has shadow, so
    // peak RSS says nothing about streaming there: the bound is the release pass's.
#ifdef REAP_ASAN
    (void) small;
#else
    EXPECT_LT(large - small, (large_file - small_file) / 8) << small << " KiB -> " << large << " KiB";
    EXPECT_LT(large, large_file / 4) << "peak RSS " << large << " KiB for a " << large_file << " KiB file";
#endif

    ASSERT_EQ(test::run_reap(args(2, "again.gguf")).exit_code, 0);
    EXPECT_TRUE(test::read_bytes(dir + "/m2.gguf") == test::read_bytes(dir + "/again.gguf"))
        << "same seed, other bytes";
    std::filesystem::remove(dir + "/again.gguf");
    std::filesystem::remove(dir + "/m4.gguf");
    expect_runs(dir + "/m2.gguf");

    const auto r = test::run_reap({"profile", "-m", dir + "/m2.gguf", "--data",
                                   std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl", "--max-tokens",
                                   "1024", "-t", "1", "--no-progress", "-o", dir + "/s.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ExpertStats s = ExpertStats::load(dir + "/s.json");
    const GgufFile    f = GgufFile::open(dir + "/m2.gguf");
    for (const auto & [il, L] : s.layers) {
        SCOPED_TRACE("layer " + std::to_string(il));
        const auto          dead = f.get_uint_array(synth::planted_key(il, "dead"));
        const auto          rare = f.get_uint_array(synth::planted_key(il, "rare"));
        const auto          weak = f.get_uint_array(synth::planted_key(il, "weak"));
        const auto          ean  = L.ean_mean();
        std::vector<double> healthy;
        for (size_t e = 0; e < L.n_expert(); e++) {
            const bool special = std::count(dead.begin(), dead.end(), e) + std::count(rare.begin(), rare.end(), e) +
                                     std::count(weak.begin(), weak.end(), e) >
                                 0;
            if (!special && L.count[e] > 0) healthy.push_back(ean[e]);
        }
        ASSERT_GT(healthy.size(), 10u);
        std::sort(healthy.begin(), healthy.end());
        const double median = healthy[healthy.size() / 2];
        for (auto e : dead)
            EXPECT_LT(ean[e], 0.01 * median) << "dead expert " << e;
        for (auto e : weak)
            EXPECT_LT(ean[e], 0.2 * median) << "weak expert " << e;
        for (auto e : rare)
            EXPECT_LE(double(L.count[e]), 0.01 * double(L.total_tokens)) << "rare expert " << e;
    }
}
