// Ctrl-C and `kill` (issue 21): an interrupted prune (single file, split set, Hugging Face
// folder) or eval stops at its next safe point, removes its temporaries, writes no output and
// exits 130, as profile does; a split set on disk is never a mix of two runs, and one that is
// (parts of two writes put together) is refused when read.
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth_hf.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

using namespace reap;
namespace fs = std::filesystem;

namespace {

const std::string k_text = std::string(REAP_SOURCE_DIR) + "/data/text/code-heldout.txt";

// Large enough (about 150 MB of Q8_0 experts) that pruning or evaluating it takes a while.
synth::Options large_model() {
    synth::Options o;
    o.arch          = "qwen3moe";
    o.n_layer       = 2;
    o.n_embd        = 768;
    o.n_ff          = 512;
    o.n_expert      = 64;
    o.n_expert_used = 8;
    return o;
}

std::string stats_of(const std::string & model, const std::string & dir) {
    return test::profile(model, dir + "/stats.json", 4);
}

// Names in `dir` that start with a dot: the temporaries of an unfinished write.
std::vector<std::string> hidden_in(const std::string & dir) {
    std::vector<std::string> out;
    std::error_code          ec;
    for (const auto & e : fs::directory_iterator(dir, ec)) {
        if (e.path().filename().string()[0] == '.') out.push_back(e.path().filename().string());
    }
    return out;
}

// The temporaries of an unfinished write (".<name>.tmp.<pid>"), not the output's lock file.
std::vector<std::string> temporaries_in(const std::string & dir) {
    std::vector<std::string> out;
    for (const std::string & n : hidden_in(dir)) {
        if (n.find(".tmp.") != std::string::npos) out.push_back(n);
    }
    return out;
}

std::string joined(const std::vector<std::string> & v) {
    std::string s;
    for (const auto & x : v)
        s += (s.empty() ? "" : ", ") + x;
    return s;
}

// Starts reap with `args`, waits until `started()` (a temporary appeared), sends `sig`, and
// returns the exit code (-1 when it did not exit normally, or finished before `started`).
int interrupt(const std::vector<std::string> & args, const std::string & dir, const std::function<bool()> & started,
              int sig, std::string & err) {
    const pid_t pid    = test::spawn_reap(args, dir + "/run.out", dir + "/run.err");
    int         status = 0;
    bool        seen   = false;
    for (int i = 0; i < 60000 && !seen; i++) {
        seen = started();
        if (!seen && ::waitpid(pid, &status, WNOHANG) == pid) {
            err = test::read_text(dir + "/run.err");
            ADD_FAILURE() << "reap finished before it could be interrupted: " << err;
            return -1;
        }
        if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::kill(pid, sig);
    ::waitpid(pid, &status, 0);
    err = test::read_text(dir + "/run.err");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class InterruptedRun : public ::testing::TestWithParam<int> {};

TEST_P(InterruptedRun, PruneLeavesNoTemporaryAndNoOutput) {
    const std::string model = test::synth_model(large_model());
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_of(model, dir);
    std::string       err;
    const int         rc = interrupt(
                {"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.75", "-o", dir + "/p.gguf", "--no-progress"}, dir,
                [&] { return !temporaries_in(dir).empty(); }, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_NE(err.find("interrupted by"), std::string::npos) << err;
    EXPECT_EQ(joined(hidden_in(dir)), "");
    EXPECT_FALSE(fs::exists(dir + "/p.gguf"));
}

// An earlier set under the same names stays whole: the new run's parts appear all together or
// not at all.
TEST_P(InterruptedRun, SplitPruneLeavesTheEarlierSetWhole) {
    const std::string              model = test::synth_model(large_model());
    const std::string              dir   = test::tmp_dir();
    const std::string              stats = stats_of(model, dir);
    const std::vector<std::string> split = {"prune",
                                            "-m",
                                            model,
                                            "--stats",
                                            stats,
                                            "--keep-ratio",
                                            "0.75",
                                            "--no-progress",
                                            "-o",
                                            dir + "/ps.gguf",
                                            "--split-max-size",
                                            "20M"};
    ASSERT_EQ(test::run_reap(split).exit_code, 0);
    std::vector<std::string> parts;
    for (const auto & e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind("ps-", 0) == 0) parts.push_back(e.path().string());
    ASSERT_GT(parts.size(), 2u);
    std::vector<std::vector<uint8_t>> before;
    for (const auto & p : parts)
        before.push_back(test::read_bytes(p));

    auto other = split;
    other.insert(other.end(), {"--criterion", "frequency"});
    std::string err;
    const int   rc = interrupt(
          other, dir, [&] { return temporaries_in(dir).size() == parts.size(); }, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_EQ(joined(hidden_in(dir)), "");
    for (size_t i = 0; i < parts.size(); i++)
        EXPECT_TRUE(test::read_bytes(parts[i]) == before[i]) << parts[i] << " changed";
    EXPECT_NO_THROW(GgufFile::open(parts[0]));
}

TEST_P(InterruptedRun, HfPruneLeavesNoTemporaryFolder) {
    const std::string model = test::synth_model(large_model());
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_of(model, dir);
    fs::create_directories(dir + "/in");
    synth::write_hf(model, dir + "/in/hf", {synth::HfExperts::per_expert, 40u << 20});
    std::string err;
    const int   rc = interrupt(
          {"prune", "-m", dir + "/in/hf", "--stats", stats, "--keep-ratio", "0.75", "-o", dir + "/out", "--no-progress"},
          dir, [&] { return !hidden_in(dir).empty(); }, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_EQ(joined(hidden_in(dir)), "");
    EXPECT_FALSE(fs::exists(dir + "/out"));
}

// The base logits, in TMPDIR or beside --base-logits, go with the run.
TEST_P(InterruptedRun, EvalRemovesItsBaseLogits) {
    const std::string model = test::synth_model(large_model());
    const std::string dir   = test::tmp_dir();
    const std::string tmp   = dir + "/tmp";
    fs::create_directories(tmp);
    const std::vector<std::string> eval = {"eval", "-m", model, "-f", k_text, "-c", "128", "--no-progress", "-t", "1"};
    ::setenv("TMPDIR", tmp.c_str(), 1);
    std::string err;
    const int   rc = interrupt(
          eval, dir, [&] { return !fs::is_empty(tmp); }, GetParam(), err);
    ::unsetenv("TMPDIR");
    EXPECT_EQ(rc, 130) << err;
    EXPECT_TRUE(fs::is_empty(tmp));

    auto kept = eval;
    kept.insert(kept.end(), {"--base-logits", dir + "/base.bin"});
    const int rc2 = interrupt(
        kept, dir, [&] { return !hidden_in(dir).empty(); }, GetParam(), err);
    EXPECT_EQ(rc2, 130) << err;
    EXPECT_EQ(joined(hidden_in(dir)), "");
    EXPECT_FALSE(fs::exists(dir + "/base.bin"));
}

TEST_P(InterruptedRun, SynthLeavesNoTemporary) {
    const std::string dir = test::tmp_dir();
    std::string       err;
    const int         rc = interrupt(
                {"synth", "-o", dir + "/m.gguf", "--layers", "2", "--n-embd", "768", "--n-ff", "512", "--n-expert", "64",
                 "--n-expert-used", "8"},
                dir, [&] { return !hidden_in(dir).empty(); }, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_EQ(joined(hidden_in(dir)), "");
    EXPECT_FALSE(fs::exists(dir + "/m.gguf"));
}

// A sweep interrupted while it profiles exits 130 like profile alone, the checkpoint kept for
// --resume (issue 29, item 7: it exited 1 with "error: interrupted while profiling").
TEST_P(InterruptedRun, SweepWhileProfiling) {
    const std::string dir = test::tmp_dir(), out = dir + "/sweep";
    // The folder's record is written just before the profile starts, which takes ~1 s here; the
    // signal comes 0.2 s into it.
    std::chrono::steady_clock::time_point seen{};
    auto                                  profiling = [&] {
        if (!fs::exists(out + "/.reap-sweep.json")) return false;
        if (seen == std::chrono::steady_clock::time_point{}) seen = std::chrono::steady_clock::now();
        return std::chrono::steady_clock::now() - seen > std::chrono::milliseconds(200);
    };
    const std::vector<std::string> args = {"sweep",
                                           "-m",
                                           REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf",
                                           "--calib",
                                           REAP_SOURCE_DIR "/data/calibration/code.jsonl",
                                           "--data",
                                           REAP_SOURCE_DIR "/data/text/sample.txt",
                                           "-c",
                                           "64",
                                           "--chunks",
                                           "1",
                                           "--ratios",
                                           "0.5",
                                           "--criteria",
                                           "reap",
                                           "--no-progress",
                                           "-o",
                                           out};
    std::string                    err;
    const int                      rc = interrupt(args, dir, profiling, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_NE(err.find("interrupted by"), std::string::npos) << err;
    EXPECT_NE(err.find("while profiling"), std::string::npos) << err;
    EXPECT_NE(err.find("--resume"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out + "/sweep.json"));
}

// A signal that lands between two steps of a sweep (a prune done, the next not started) stops
// it: one guard covers the whole command (issue 29, item 6: the next step's guard cleared it and
// the sweep ran to the end with exit 0, or it died of the signal without a line).
TEST_P(InterruptedRun, SweepBetweenSteps) {
    const std::string model = REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf";
    const std::string dir = test::tmp_dir(), out = dir + "/sweep";
    const std::string stats = test::profile(model, dir + "/stats.json", 8);
    std::string       err;
    const int         rc = interrupt(
                {"sweep", "-m", model, "--stats", stats, "--data", REAP_SOURCE_DIR "/data/text/code-heldout.txt", "-c", "64",
                 "--chunks", "30", "--ratios", "0.25,0.5,0.625,0.75", "--criteria", "reap,frequency", "--no-progress", "-o",
                 out},
                dir, [&] { return fs::exists(out + "/reap-50.gguf"); }, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_NE(err.find("interrupted by"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out + "/sweep.json"));
}

// A signal while the sweep quantizes (sweep --quant) stops it at the end of that quantization:
// exit 130, no temporary of llama_model_quantize's output left, no sweep.json.
TEST_P(InterruptedRun, SweepWhileQuantizing) {
    const std::string model = REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf";
    const std::string dir = test::tmp_dir(), out = dir + "/sweep";
    const std::string stats = test::profile(model, dir + "/stats.json", 8);
    std::string       err;
    const int         rc = interrupt(
                {"sweep",
                 "-m",
                 model,
                 "--stats",
                 stats,
                 "--data",
                 REAP_SOURCE_DIR "/data/text/code-heldout.txt",
                 "-c",
                 "64",
                 "--chunks",
                 "30",
                 "--ratios",
                 "0.25,0.5,0.625,0.75",
                 "--criteria",
                 "reap,frequency",
                 "--quant",
                 "Q8_0,Q5_1,Q5_0,Q4_1,Q4_0",
                 "--no-progress",
                 "-o",
                 out},
                dir, [&] { return fs::exists(out + "/base-Q4_0.gguf"); }, GetParam(), err);
    EXPECT_EQ(rc, 130) << err;
    EXPECT_NE(err.find("interrupted by"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out + "/sweep.json"));
    for (const auto & e : fs::directory_iterator(out))
        EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

INSTANTIATE_TEST_SUITE_P(Signals, InterruptedRun, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int> & i) {
                             return std::string(i.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

// Parts of two writes put together (as a crash or kill -9 between the renames would leave them)
// are refused: the model would be neither run's.
TEST(SplitSet, PartsOfTwoWritesAreRefused) {
    synth::Options o        = large_model();
    o.n_embd                = 256;
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_of(model, dir);
    for (const char * name : {"a", "b"}) {
        const auto r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o",
                                       dir + "/" + name + ".gguf", "--split-max-size", "4M", "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    std::string a1, b2;
    for (const auto & e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("a-00001-of-", 0) == 0) a1 = e.path().string();
        if (n.rfind("b-00002-of-", 0) == 0) b2 = e.path().string();
    }
    ASSERT_FALSE(a1.empty());
    ASSERT_FALSE(b2.empty());
    EXPECT_NO_THROW(GgufFile::open(a1));
    const std::string a2 = dir + "/a-00002" + b2.substr(b2.find("-of-"));
    fs::copy_file(b2, a2, fs::copy_options::overwrite_existing);
    try {
        GgufFile::open(a1);
        ADD_FAILURE() << "a set mixing two writes was opened";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find(a2 + ": part 2 of"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("comes from another write"), std::string::npos) << e.what();
    }
    const auto r = test::run_reap({"inspect", a1});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("comes from another write"), std::string::npos) << r.err;
}

}  // namespace
