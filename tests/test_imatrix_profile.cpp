// `reap profile --imatrix`: llama.cpp's importance matrix from the profile's own decode equals
// llama-imatrix's on the same text, follows the run through checkpoints and --resume, and adds up
// over shards with `reap merge`.
#include "core/error.h"
#include "gguf/imatrix_file.h"
#include "profile/moe_collector.h"
#include "stats/expert_stats.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace reap;

namespace {

const std::string k_text    = std::string(REAP_SOURCE_DIR) + "/data/text/prose-heldout.txt";
const std::string k_trained = std::string(REAP_SOURCE_DIR) + "/data/models/tiny-moe-q8_0.gguf";

// The first `bytes` of the held-out prose: a few thousand tokens, enough windows for both tools.
std::string text_file(const std::string & dir, size_t bytes = 6000) {
    const std::string all  = test::read_text(k_text);
    const std::string path = dir + "/calib.txt";
    std::ofstream(path) << all.substr(0, all.find('\n', bytes) + 1);
    return path;
}

// Same entries, equal counts, in_sum2 within `rel` of the reference (llama-imatrix sums in float).
void expect_same_imatrix(const Imatrix & ref, const Imatrix & got, double rel) {
    ASSERT_EQ(ref.entries.size(), got.entries.size());
    for (const auto & [name, r] : ref.entries) {
        ASSERT_TRUE(got.entries.count(name)) << name;
        const ImatrixEntry & g = got.entries.at(name);
        ASSERT_EQ(r.n_cols, g.n_cols) << name;
        EXPECT_EQ(r.counts, g.counts) << name;
        double scale = 0;
        for (double v : r.in_sum2)
            scale = std::max(scale, v);
        for (size_t i = 0; i < r.in_sum2.size(); i++) {
            // relative to the value, or to the entry's largest where the value is near zero
            const double tol = rel * std::max(std::fabs(r.in_sum2[i]), 1e-3 * scale);
            ASSERT_NEAR(r.in_sum2[i], g.in_sum2[i], tol) << name << " [" << i << "]";
        }
    }
    EXPECT_EQ(ref.chunk_count, got.chunk_count);
    EXPECT_EQ(ref.chunk_size, got.chunk_size);
}

// The default synthetic model cut to two layers: quick runs of the whole profile.
std::string two_layer_model() {
    synth::Options o;
    o.n_layer = 2;
    return test::synth_model(o);
}

// (Unused where the build found no llama-imatrix.)
[[maybe_unused]] bool has_entry_like(const Imatrix & m, const std::string & part) {
    return std::any_of(m.entries.begin(), m.entries.end(),
                       [&](const auto & e) { return e.first.find(part) != std::string::npos; });
}

}  // namespace

// ---- equal to llama-imatrix ---------------------------------------------------------------------

class EqualsLlamaImatrix : public ::testing::TestWithParam<std::string> {};

TEST_P(EqualsLlamaImatrix, SameEntriesCountsAndSums) {
#ifndef REAP_LLAMA_IMATRIX
    GTEST_SKIP() << "llama-imatrix was not found when the tests were configured";
#else
    std::string model = GetParam();
    if (model != "trained") {
        synth::Options o;
        o.arch    = model;
        o.n_layer = test::fewest_layers(model);
        model     = test::synth_model(o);
    } else {
        model = k_trained;
    }
    const std::string dir  = test::tmp_dir();
    const std::string text = text_file(dir);
    // Four windows of 64 tokens per decode: llama-imatrix runs them as four sequences.
    const std::vector<std::string> shape = {"-c", "64", "-b", "256", "-t", "1"};
    std::vector<std::string>       args  = {"-m", model, "-f", text, "-o", dir + "/ref.gguf", "--no-ppl"};
    args.insert(args.end(), shape.begin(), shape.end());
    const test::RunResult ref = test::run_program(REAP_LLAMA_IMATRIX, args);
    ASSERT_EQ(ref.exit_code, 0) << ref.err;
    std::vector<std::string> mine = {
        "profile",          "-m",           model, "--data", text, "-o", dir + "/s.json", "--imatrix",
        dir + "/mine.gguf", "--no-progress"};
    mine.insert(mine.end(), shape.begin(), shape.end());
    const test::RunResult r = test::run_reap(mine);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Imatrix a = read_imatrix(dir + "/ref.gguf"), b = read_imatrix(dir + "/mine.gguf");
    // dense layer weights and expert tensors both
    EXPECT_TRUE(has_entry_like(a, "attn_")) << "no attention entry";
    EXPECT_TRUE(has_entry_like(a, "_exps.weight")) << "no expert entry";
    expect_same_imatrix(a, b, 1e-4);
    EXPECT_EQ(b.datasets, std::vector<std::string>{text});
    // The stats file names the imatrix written with it.
    const ExpertStats s = ExpertStats::load(dir + "/s.json");
    ASSERT_TRUE(s.meta.imatrix.has_value());
    EXPECT_EQ(s.meta.imatrix->file, "mine.gguf");
    EXPECT_EQ(s.meta.imatrix->hash, imatrix_hash_text(b));
#endif
}

// The trained model (qwen3moe, Q8_0) and deepseek2 (a dense first layer, shared experts, MLA's
// attention projections).
INSTANTIATE_TEST_SUITE_P(Models, EqualsLlamaImatrix, ::testing::Values("trained", "deepseek2"));

// ---- the run: checkpoints, resume, shards --------------------------------------------------------

// Waits until the stats file at `path` records a checkpoint of an unfinished run.
bool wait_for_checkpoint(const std::string & path, pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            const nlohmann::json j = nlohmann::json::parse(test::read_text(path));
            if (j["_meta"]["progress"]["samples_done"].get<int>() > 0)
                return !j["_meta"]["progress"]["complete"].get<bool>();
        } catch (...) {}
        int status;
        if (::waitpid(pid, &status, WNOHANG) == pid) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

TEST(ImatrixRun, ResumeAfterAnInterruptionEqualsAnUninterruptedRun) {
    synth::Options    o;  // the default 8-layer model: slow enough to interrupt
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const std::string text  = text_file(dir, 6000);
    // One window per decode, so that the interruption does not change any micro-batch.
    const std::vector<std::string> common = {"profile", "-m", model, "--data", text,           "-c", "64",
                                             "-b",      "64", "-t",  "1",      "--save-every", "1",  "--no-progress"};
    auto                           full   = common;
    full.insert(full.end(), {"-o", dir + "/full.json", "--imatrix", dir + "/full.gguf"});
    ASSERT_EQ(test::run_reap(full).exit_code, 0);

    auto part = common;
    part.insert(part.end(), {"-o", dir + "/part.json", "--imatrix", dir + "/part.gguf"});
    const pid_t pid = test::spawn_reap(part, dir + "/run.log", dir + "/run.err");
    ASSERT_TRUE(wait_for_checkpoint(dir + "/part.json", pid)) << "the run finished before a checkpoint was seen";
    ::kill(pid, SIGINT);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 130);

    // The checkpoint's imatrix is required to go on, and it must be that one.
    const auto without = test::run_reap([&] {
        auto a = common;
        a.insert(a.end(), {"-o", dir + "/part.json", "--resume"});
        return a;
    }());
    EXPECT_EQ(without.exit_code, 1);
    EXPECT_NE(without.err.find("resume with --imatrix"), std::string::npos) << without.err;

    auto resume = part;
    resume.push_back("--resume");
    const auto rr = test::run_reap(resume);
    ASSERT_EQ(rr.exit_code, 0) << rr.err;
    // The checkpoint kept the sums in F32: the resumed run's sums within float rounding.
    expect_same_imatrix(read_imatrix(dir + "/full.gguf"), read_imatrix(dir + "/part.gguf"), 1e-6);
}

TEST(ImatrixRun, ResumeRefusesAnImatrixThatIsNotTheCheckpoints) {
    const std::string        model = two_layer_model();
    const std::string        dir   = test::tmp_dir();
    const std::string        text  = text_file(dir);
    std::vector<std::string> args  = {"profile",   "-m",           model, "--data",        text, "-c",
                                      "64",        "-t",           "1",   "--no-progress", "-o", dir + "/s.json",
                                      "--imatrix", dir + "/m.gguf"};
    ASSERT_EQ(test::run_reap(args).exit_code, 0);
    // Another run's imatrix in its place: the hash the stats file records tells them apart.
    auto other              = args;
    other[other.size() - 3] = dir + "/other.json";
    other[other.size() - 1] = dir + "/other.gguf";
    other.insert(other.end(), {"--max-tokens", "200"});
    ASSERT_EQ(test::run_reap(other).exit_code, 0);
    std::filesystem::copy_file(dir + "/other.gguf", dir + "/m.gguf", std::filesystem::copy_options::overwrite_existing);
    // mark the checkpoint unfinished so that --resume reads it
    nlohmann::json j                       = nlohmann::json::parse(test::read_text(dir + "/s.json"));
    j["_meta"]["progress"]["complete"]     = false;
    j["_meta"]["progress"]["samples_done"] = 1;
    std::ofstream(dir + "/s.json") << j.dump();
    args.push_back("--resume");
    const auto r = test::run_reap(args);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("not the importance matrix saved with the checkpoint"), std::string::npos) << r.err;
}

TEST(ImatrixRun, ShardsMergeIntoTheWholeRunsImatrix) {
    const std::string              model  = two_layer_model();
    const std::string              dir    = test::tmp_dir();
    const std::string              text   = text_file(dir);
    const std::vector<std::string> common = {"profile", "-m", model, "--data", text, "-c",
                                             "64",      "-b", "64",  "-t",     "1",  "--no-progress"};
    auto                           run    = [&](const std::string & name, const std::vector<std::string> & extra) {
        auto a = common;
        a.insert(a.end(), {"-o", dir + "/" + name + ".json", "--imatrix", dir + "/" + name + ".gguf"});
        a.insert(a.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(a);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    };
    run("whole", {});
    run("s1", {"--shard", "1/2"});
    run("s2", {"--shard", "2/2"});
    const auto m = test::run_reap({"merge", dir + "/s1.json", dir + "/s2.json", "-o", dir + "/merged.json"});
    ASSERT_EQ(m.exit_code, 0) << m.err;
    const Imatrix whole = read_imatrix(dir + "/whole.gguf"), merged = read_imatrix(dir + "/merged.imatrix.gguf");
    expect_same_imatrix(whole, merged, 1e-5);
    const ExpertStats s = ExpertStats::load(dir + "/merged.json");
    ASSERT_TRUE(s.meta.imatrix.has_value());
    EXPECT_EQ(s.meta.imatrix->file, "merged.imatrix.gguf");
    EXPECT_EQ(s.meta.imatrix->hash, imatrix_hash_text(merged));

    // A run's imatrix replaced by another's: merge refuses it rather than add the wrong tokens.
    std::filesystem::copy_file(dir + "/whole.gguf", dir + "/s2.gguf",
                               std::filesystem::copy_options::overwrite_existing);
    const auto bad = test::run_reap({"merge", dir + "/s1.json", dir + "/s2.json", "-o", dir + "/bad.json"});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("not the importance matrix"), std::string::npos) << bad.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/bad.json"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/bad.imatrix.gguf"));
}

TEST(ImatrixRun, OptionErrors) {
    const std::string dir   = test::tmp_dir();
    const std::string model = two_layer_model();
    const auto        nc =
        test::run_reap({"profile", "-m", model, "--data", k_text, "--imatrix", dir + "/m.gguf", "--no-collect"});
    EXPECT_EQ(nc.exit_code, 2) << nc.err;
    // the imatrix over the stats file, or over the model
    const auto same = test::run_reap({"profile", "-m", model, "--data", k_text, "-o", dir + "/s.json", "--imatrix",
                                      dir + "/s.json", "--no-progress"});
    EXPECT_EQ(same.exit_code, 1) << same.err;
    const auto over = test::run_reap(
        {"profile", "-m", model, "--data", k_text, "-o", dir + "/s.json", "--imatrix", model, "--no-progress"});
    EXPECT_EQ(over.exit_code, 1) << over.err;
    EXPECT_NE(over.err.find("is also an input"), std::string::npos) << over.err;
    // A model file is not an importance matrix.
    EXPECT_THROW(read_imatrix(model), Error);
}

// An exception inside llama.cpp's callback comes out of the decode with its class: a bug (here a
// length_error from an impossible tensor shape) stays a bug (exit 70), not a reap::Error (exit 1).
TEST(ImatrixRun, AnExceptionInTheCallbackKeepsItsClass) {
    ggml_init_params ip{16 * ggml_tensor_overhead(), nullptr, true};
    ggml_context *   ctx = ggml_init(ip);
    // 2^61 matrices of one column: more sums than a vector can hold (nothing is allocated)
    ggml_tensor * w = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 1, 4, int64_t(1) << 31, int64_t(1) << 30);
    ggml_tensor * x = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 1, 16, int64_t(1) << 31, int64_t(1) << 30);
    ggml_set_name(w, "blk.0.attn_q.weight");
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);
    ggml_set_name(y, "Qcur-0");
    MoeCollector     c(4, {0});
    ImatrixCollector m;
    c.set_imatrix(&m);
    ASSERT_TRUE(MoeCollector::eval_callback(y, true, &c));
    MoeCollector::eval_callback(y, false, &c);
    EXPECT_THROW(c.check_error(), std::length_error);
    EXPECT_NO_THROW(c.check_error());  // reported once
    ggml_free(ctx);
}
