// Cross-checks with llama.cpp's own tool, llama-perplexity (built by scripts/setup.sh beside the
// library), always through test::run_llama_perplexity: its log can lose its last lines on a
// loaded machine, and that helper is the one place that knows.
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

// `copies` times the sample text: a file that ends with a newline, as text files do.
std::string repeated_sample(const std::string & dir, int copies) {
    const std::string path = dir + "/text.txt";
    std::ofstream     out(path);
    for (int i = 0; i < copies; i++)
        out << test::read_text(k_sample);
    return path;
}

// The cross-checks pass only on a finite PPL: llama-perplexity prints "nan" or "inf" for a model
// whose logits went bad, and those must fail them.
TEST(LlamaPerplexityLog, FinalEstimateIsAFinitePositiveNumber) {
    const std::string before = "perplexity: calculating perplexity over 4 chunks, n_ctx=128, batch_size=128\n";
    EXPECT_DOUBLE_EQ(test::final_ppl(before + "Final estimate: PPL = 12.3456 +/- 0.12345\n"), 12.3456);
    for (const char * bad :
         {"nan +/- nan", "-nan +/- -nan", "inf +/- inf", "-inf +/- nan", "0.0000 +/- 0.00000", "+/- 0.1", ""}) {
        EXPECT_EQ(test::final_ppl(before + "Final estimate: PPL = " + bad + "\n"), -1) << bad;
    }
    EXPECT_EQ(test::final_ppl(before), -1);  // the logger lost the last line
}

// reap eval --ppl-convention second-half and llama-perplexity on the same file and -c: the same
// windows (full ones only, llama-perplexity's -f drops the file's last newline), the same scored
// positions, the same PPL (llama-perplexity prints 4 decimals; it sums in float where reap uses
// double).
void expect_second_half_equals_llama_perplexity(const std::string & model, const std::string & text,
                                                const std::string & dir, const std::vector<int> & sizes) {
    for (int c : sizes) {
        const std::string cs = std::to_string(c);
        const auto        theirs =
            test::run_llama_perplexity({"-m", model, "-f", text, "-c", cs, "-b", cs, "-t", "1", "--no-warmup"});
        ASSERT_EQ(theirs.run.exit_code, 0) << theirs.run.out << theirs.run.err;
        ASSERT_GT(theirs.ppl, 0) << "-c " << c << " after " << theirs.attempts << " attempts:\n" << theirs.run.err;
        const std::string table = dir + "/c" + cs + ".json";
        const auto ours = test::run_reap({"eval", "-m", model, "-f", text, "-c", cs, "--ppl-convention", "second-half",
                                          "-o", table, "--no-progress"});
        ASSERT_EQ(ours.exit_code, 0) << ours.err;
        const json row = json::parse(test::read_bytes(table))[0];
        EXPECT_EQ(row["tokens_scored"].get<uint64_t>(), uint64_t(theirs.chunks) * uint64_t(c - 1 - c / 2))
            << "-c " << c << ": llama-perplexity scored " << theirs.chunks << " windows";
        EXPECT_NEAR(row["ppl"].get<double>(), theirs.ppl, 5e-5 + 2e-5 * theirs.ppl) << "-c " << c;
    }
}

// The committed trained model: a BPE vocabulary without BOS. Its 1,942 tokens of text leave a last
// partial window with positions in its second half at -c 50 and 130 (which reap used to score).
TEST(LlamaPerplexity, SecondHalfEqualsItAtEveryContextSizeWithoutBos) {
    const std::string dir = test::tmp_dir();
    expect_second_half_equals_llama_perplexity(REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf",
                                               repeated_sample(dir, 2), dir, {16, 50, 130});
}

// A synthetic model: its vocabulary adds BOS, which llama-perplexity writes over each window's
// first token.
TEST(LlamaPerplexity, SecondHalfEqualsItAtEveryContextSizeWithBos) {
    const std::string dir = test::tmp_dir();
    synth::Options    o;
    o.n_layer = 2;
    expect_second_half_equals_llama_perplexity(test::synth_model(o), repeated_sample(dir, 2), dir, {16, 37, 128});
}

// llama-perplexity runs the default synthetic model of every hand-written architecture, and that
// model pruned to half its experts by reap profile + reap prune, to a finite final estimate.
class LlamaPerplexityRuns : public testing::TestWithParam<std::string> {};

TEST_P(LlamaPerplexityRuns, SynthModelAndItsPrunedModel) {
    const std::string dir  = test::tmp_dir();
    const std::string text = repeated_sample(dir, 3);  // 4 windows of 128 tokens of plain English
    const std::string arch = GetParam(), model = dir + "/" + arch + ".gguf";
    ASSERT_EQ(test::run_reap({"synth", "--arch", arch, "-o", model}).exit_code, 0);
    const std::string pruned = test::profile_and_halve(model, dir, 4).pruned;
    ASSERT_FALSE(HasFailure());
    for (const std::string & m : {model, pruned}) {
        const auto r =
            test::run_llama_perplexity({"-m", m, "-f", text, "-c", "128", "-b", "128", "-t", "1", "--chunks", "4"});
        ASSERT_EQ(r.run.exit_code, 0) << m << ":\n" << r.run.err;
        EXPECT_EQ(r.chunks, 4) << m;
        EXPECT_TRUE(std::isfinite(r.ppl) && r.ppl > 0) << m << " after " << r.attempts << " attempts:\n" << r.run.err;
    }
}

INSTANTIATE_TEST_SUITE_P(Arch, LlamaPerplexityRuns,
                         testing::Values("qwen3moe", "llama", "deepseek2", "gpt-oss", "nemotron_h_moe"),
                         [](const testing::TestParamInfo<std::string> & i) {
                             std::string n = i.param;
                             for (char & ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

}  // namespace
