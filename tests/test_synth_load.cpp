// Every synthetic architecture and weight type: llama.cpp loads the file and decodes a prompt
// with finite, input-dependent logits.
#include "support.h"
#include "support_models.h"
#include "synth/synth_presets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

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
