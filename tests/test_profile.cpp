// reap profile on real llama.cpp inference over synthetic models with known structure.
#include "core/error.h"
#include "ggml.h"
#include "gguf.h"
#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"
#include "profile/profiler.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

synth::Options small(const std::string & arch) {
    synth::Options o;
    o.arch    = arch;
    o.n_layer = arch == "nemotron_h_moe" ? 6 : arch == "gpt-oss" ? 2 : 3;
    return o;
}

ProfileOptions opts_for(const std::string & model, const std::string & out) {
    ProfileOptions p = test::profile_options(model, out);
    p.max_samples    = 24;
    return p;
}

std::vector<uint32_t> planted(const GgufFile & f, int il, const char * kind) {
    std::vector<uint32_t> out;
    for (auto v : f.get_uint_array(synth::planted_key(il, kind)))
        out.push_back(uint32_t(v));
    return out;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// The applied gate weights of a token sum to this (top-k normalisation, then scaling).
double gate_target(const std::string & arch) { return arch == "deepseek2" || arch == "nemotron_h_moe" ? 2.5 : 1.0; }

class ProfileArch : public ::testing::TestWithParam<std::string> {};

TEST_P(ProfileArch, InvariantsAndPlantedStructure) {
    const std::string   arch  = GetParam();
    const std::string   model = test::synth_model(small(arch));
    const std::string   out   = test::tmp_dir() + "/stats.json";
    const ProfileResult r     = run_profile(opts_for(model, out));
    ASSERT_GT(r.tokens, 500u);
    EXPECT_EQ(r.samples_done, 24u);

    const GgufFile    f = GgufFile::open(model);
    const MoeLayout   m = analyze_moe(f);
    const ExpertStats s = ExpertStats::load(out);
    // Every MoE layer and nothing else.
    std::vector<int> layers;
    for (const auto & [il, L] : s.layers)
        layers.push_back(il);
    EXPECT_EQ(layers, m.moe_layer_indices());
    EXPECT_EQ(s.meta["progress"]["complete"], true);
    EXPECT_EQ(s.meta["tokens"].get<uint64_t>(), r.tokens);

    for (const auto & [il, L] : s.layers) {
        SCOPED_TRACE("layer " + std::to_string(il));
        // Every token reaches every MoE layer, including the last one (all tokens are outputs).
        EXPECT_EQ(L.total_tokens, r.tokens);
        uint64_t routed = 0;
        double   gates  = 0;
        for (size_t e = 0; e < L.n_expert(); e++) {
            routed += L.count[e];
            gates += L.gate_sum[e];
        }
        EXPECT_EQ(routed, L.total_tokens * m.n_expert_used[size_t(il)]);
        EXPECT_NEAR(gates / double(L.total_tokens), gate_target(arch), 1e-4);

        const auto         dead = planted(f, il, "dead"), rare = planted(f, il, "rare"), weak = planted(f, il, "weak");
        std::set<uint32_t> special(dead.begin(), dead.end());
        special.insert(rare.begin(), rare.end());
        special.insert(weak.begin(), weak.end());
        std::vector<double> healthy_ean, healthy_reap, healthy_freq;
        const auto          ean = L.ean_mean(), reap = L.reap();
        for (uint32_t e = 0; e < L.n_expert(); e++) {
            if (!special.count(e) && L.count[e] > 0) {
                healthy_ean.push_back(ean[e]);
                healthy_reap.push_back(reap[e]);
                healthy_freq.push_back(L.activation_frequency()[e]);
            }
        }
        ASSERT_GE(healthy_ean.size(), 2u);
        for (uint32_t e : dead) {
            EXPECT_LT(ean[e], 0.01 * median(healthy_ean)) << "dead expert " << e;
            EXPECT_LT(reap[e], 0.01 * median(healthy_reap)) << "dead expert " << e;
        }
        for (uint32_t e : rare) {
            EXPECT_LE(double(L.count[e]), 0.01 * double(L.total_tokens)) << "rare expert " << e;
        }
        // Weak: selected often, small output. (Its REAP can still rival healthy experts under a
        // renormalised top-2 softmax, where it takes most of the gate: REAP measures exactly that.)
        for (uint32_t e : weak) {
            EXPECT_LT(ean[e], 0.2 * median(healthy_ean)) << "weak expert " << e;
            EXPECT_GT(L.activation_frequency()[e], 0.05) << "weak expert " << e;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllArchs, ProfileArch, ::testing::ValuesIn(synth::architectures()),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             for (auto & c : n)
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             return n;
                         });

void expect_same_stats(const ExpertStats & a, const ExpertStats & b, double rel) {
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (const auto & [il, A] : a.layers) {
        const LayerStats & B = b.layers.at(il);
        EXPECT_EQ(A.total_tokens, B.total_tokens);
        EXPECT_EQ(A.count, B.count) << "layer " << il;
        for (size_t e = 0; e < A.n_expert(); e++) {
            for (auto [x, y] :
                 {std::pair{A.reap_sum[e], B.reap_sum[e]}, std::pair{A.gate_sum[e], B.gate_sum[e]},
                  std::pair{A.ean_sum[e], B.ean_sum[e]}, std::pair{A.raw_gate_sum[e], B.raw_gate_sum[e]}}) {
                EXPECT_LE(std::fabs(x - y), rel * std::max({1.0, std::fabs(x), std::fabs(y)}))
                    << "layer " << il << " expert " << e << ": " << x << " vs " << y;
            }
        }
    }
}

class Packing : public ::testing::TestWithParam<std::string> {};

TEST_P(Packing, PackedEqualsOneSamplePerDecode) {
    // Routing must be identical and the sums equal to 1e-4. Not 1e-6: llama.cpp itself is not
    // invariant to the batch shape (its kernels and attention tiling differ with the micro-batch;
    // measured on this model: the same unpacked batches at -ub 512 vs -ub 32 differ by 2.5e-2 with
    // 32 routing flips, while thread count changes nothing). Packed vs unpacked: 2e-6 to 2e-5.
    synth::Options o        = small(GetParam());
    o.type                  = GGML_TYPE_F32;
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    ProfileOptions    p     = opts_for(model, dir + "/packed.json");
    p.max_samples           = 12;
    p.type_k = p.type_v = "f32";
    const auto packed   = run_profile(p);
    p.pack              = false;
    p.output            = dir + "/single.json";
    const auto single   = run_profile(p);
    EXPECT_EQ(packed.tokens, single.tokens);
    expect_same_stats(packed.stats, single.stats, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Archs, Packing, ::testing::Values("qwen3moe", "gpt-oss", "nemotron_h_moe"),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             for (auto & c : n)
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             return n;
                         });

// ---- run control through the executable -------------------------------------------------------

// Waits until `path` holds a checkpoint with at least one sample done and the run incomplete.
// A deadline in time, not in polls: on a loaded machine loading the model alone can take seconds.
bool wait_for_checkpoint(const std::string & path, pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream in(path);
        if (in) {
            try {
                json j = json::parse(in);
                if (j["_meta"]["progress"]["samples_done"].get<int>() > 0) {
                    return !j["_meta"]["progress"]["complete"].get<bool>();
                }
            } catch (...) {}
        }
        int status;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

class Interrupt : public ::testing::TestWithParam<int> {};

TEST_P(Interrupt, ResumeAfterAKillEqualsAnUninterruptedRun) {
    const int         sig = GetParam();
    synth::Options    o;  // the default 8-layer model: slow enough to interrupt
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    // 24 of the 80 samples: the kill lands after the first checkpoint (2 samples) with most of
    // the run still to go, at a quarter of the full file's time (three runs per signal).
    const std::vector<std::string> common = {
        "profile", "-m",           model, "--jsonl",       k_sample, "--no-pack",    "-t",
        "1",       "--save-every", "2",   "--max-samples", "24",     "--no-progress"};

    auto full_args = common;
    full_args.insert(full_args.end(), {"-o", dir + "/full.json"});
    ASSERT_EQ(test::run_reap(full_args).exit_code, 0);

    auto part_args = common;
    part_args.insert(part_args.end(), {"--output", dir + "/part.json"});
    const pid_t pid = test::spawn_reap(part_args, dir + "/run.log", dir + "/run.log.err");
    ASSERT_TRUE(wait_for_checkpoint(dir + "/part.json", pid)) << "the run finished before a checkpoint was seen";
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (sig == SIGKILL) {
        EXPECT_TRUE(WIFSIGNALED(status));
    } else {
        // SIGTERM/SIGINT: a final checkpoint, a message, and exit 130.
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 130);  // one convention: an interrupted command exits 130
        const auto err = test::read_bytes(dir + "/run.log.err");
        EXPECT_NE(std::string(err.begin(), err.end()).find("--resume"), std::string::npos);
    }
    const ExpertStats partial = ExpertStats::load(dir + "/part.json");
    EXPECT_FALSE(partial.meta["progress"]["complete"].get<bool>());

    auto resume_args = part_args;
    resume_args.push_back("--resume");
    const auto rr = test::run_reap(resume_args);
    ASSERT_EQ(rr.exit_code, 0) << rr.err;
    const ExpertStats full = ExpertStats::load(dir + "/full.json"), resumed = ExpertStats::load(dir + "/part.json");
    EXPECT_TRUE(resumed.meta["progress"]["complete"].get<bool>());
    EXPECT_EQ(resumed.meta["tokens"], full.meta["tokens"]);
    expect_same_stats(full, resumed, 1e-12);  // no sample counted twice or missed
    // The half-way sums of the calibration-convergence check survive the interruption: those
    // taken before the checkpoint come back with it, the rest are taken after the resume.
    ASSERT_EQ(resumed.milestones.size(), full.milestones.size());
    ASSERT_FALSE(full.milestones.empty());
    for (size_t m = 0; m < full.milestones.size(); m++) {
        EXPECT_EQ(resumed.milestones[m].fraction, full.milestones[m].fraction);
        EXPECT_EQ(resumed.milestones[m].tokens, full.milestones[m].tokens);
        ExpertStats a, b;
        a.layers = full.milestones[m].layers;
        b.layers = resumed.milestones[m].layers;
        expect_same_stats(a, b, 1e-12);
    }
}

INSTANTIATE_TEST_SUITE_P(Signals, Interrupt, ::testing::Values(SIGKILL, SIGTERM, SIGINT));

// ---- inputs --------------------------------------------------------------------------------------

TEST(ProfileInputs, FormatsAndAliases) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string chat = dir + "/chat.jsonl", text = dir + "/text.jsonl", plain = dir + "/doc.txt";
    {
        std::ofstream(chat)
            << R"({"messages": [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]})"
               "\n"
            << R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]})"
               "\n";
        std::ofstream(text) << R"({"text": "A plain text sample."})"
                               "\n\n"
                               R"({"text": "Another one, with \u00e9."})"
                               "\n";
        std::ifstream src(std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt");
        std::ofstream(plain) << src.rdbuf();
    }
    const auto r = test::run_reap({"profile",
                                   "-m",
                                   model,
                                   "--data",
                                   chat,
                                   "--data",
                                   text,
                                   "--data",
                                   plain,
                                   "-c",
                                   "64",
                                   "-b",
                                   "256",
                                   "-ub",
                                   "128",
                                   "-np",
                                   "8",
                                   "-ngl",
                                   "0",
                                   "-ctk",
                                   "f16",
                                   "--n-experts",
                                   "16",
                                   "--output",
                                   dir + "/s.json",
                                   "--no-progress",
                                   "-t",
                                   "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ExpertStats s   = ExpertStats::load(dir + "/s.json");
    const json &      cal = s.meta["calibration"];
    ASSERT_EQ(cal.size(), 3u);
    EXPECT_EQ(cal[0]["samples"], 2);
    EXPECT_EQ(cal[1]["samples"], 2);
    // ~400 words cut into 64-token windows
    EXPECT_GE(cal[2]["samples"].get<int>(), 8);
    uint64_t total = 0;
    for (const auto & c : cal)
        total += c["tokens"].get<uint64_t>();
    EXPECT_EQ(s.layers.begin()->second.total_tokens, total);
    // the chat template was applied: more tokens than the bare message text
    EXPECT_GT(cal[0]["tokens"].get<int>(), 20);
    EXPECT_NE(r.out.find("highest REAP expert"), std::string::npos);
}

TEST(ProfileInputs, MalformedLinesAreSkippedOrFatalWithStrict) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string data  = dir + "/mixed.jsonl";
    std::ofstream(data) << R"({"prompt": "Hello", "response": "World"})"
                           "\n"
                        << R"({"prompt": "unterminated)"
                           "\n"
                        << R"({"neither": 1})"
                           "\n"
                        << R"({"text": "fine"})"
                           "\n";
    const auto r = test::run_reap({"profile", "-m", model, "--data", data, "-o", dir + "/s.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(data + ":2: malformed JSON"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(data + ":3: no 'text'"), std::string::npos) << r.err;
    EXPECT_EQ(ExpertStats::load(dir + "/s.json").meta["calibration"][0]["skipped_lines"], 2);

    const auto strict = test::run_reap({"profile", "-m", model, "--data", data, "-o", dir + "/t.json", "--strict"});
    EXPECT_EQ(strict.exit_code, 1);
    EXPECT_NE(strict.err.find(data + ":2: malformed JSON"), std::string::npos) << strict.err;
    struct stat st;
    EXPECT_NE(::stat((dir + "/t.json").c_str(), &st), 0);
}

TEST(ProfileInputs, RefusalsLeaveNoStatsFile) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string out   = dir + "/keep.json";
    std::ofstream(out) << "previous contents\n";
    const std::string empty = dir + "/empty.jsonl";
    std::ofstream(empty) << "\n\n";

    auto refuse = [&](std::vector<std::string> args, const std::string & why) {
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(r.signal, 0);
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        const auto b = test::read_bytes(out);
        EXPECT_EQ(std::string(b.begin(), b.end()), "previous contents\n") << "the old stats file was touched";
    };
    refuse({"profile", "-m", model, "--data", empty, "-o", out}, "no usable calibration samples");
    refuse({"profile", "-m", model, "--data", k_sample, "-o", out, "--n-experts", "8"}, "--n-experts 8 does not match");
    refuse({"profile", "-m", dir + "/nope.gguf", "--data", k_sample, "-o", out}, "nope.gguf");
    refuse({"profile", "-m", model, "--data", dir + "/nope.jsonl", "-o", out}, "nope.jsonl: cannot open");
    refuse({"profile", "-m", model, "--data", k_sample, "-o", out, "--resume"}, "cannot resume");
    const auto r = test::run_reap({"profile", "-m", model, "--data", k_sample, "-o", dir + "/no/dir/s.json"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("cannot write"), std::string::npos) << r.err;
    // A file that is not a GGUF, and a valid GGUF of a dense model (no experts).
    test::write_bytes(dir + "/not.gguf", "GGUF", 4);
    refuse({"profile", "-m", dir + "/not.gguf", "--data", k_sample, "-o", out}, "not a valid GGUF");
    test::write_dense_gguf(dir + "/dense.gguf");
    refuse({"profile", "-m", dir + "/dense.gguf", "--data", k_sample, "-o", out}, "not a mixture-of-experts model");
}

// ---- hardening ---------------------------------------------------------------------------------

TEST(ProfileHardening, BatchSmallerThanParallelDoesNotAbort) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    // -np defaults to 64: llama.cpp aborted when -b was below it.
    for (const char * b : {"32", "1"}) {
        const std::string out = dir + "/b" + b + ".json";
        const auto r = test::run_reap({"profile", "-m", model, "--data", k_sample, "-b", b, "--max-tokens", "96", "-o",
                                       out, "--no-progress", "-t", "1"});
        ASSERT_EQ(r.exit_code, 0) << "-b " << b << ": " << r.err;
        EXPECT_EQ(r.signal, 0);
        EXPECT_EQ(ExpertStats::load(out).layers.begin()->second.total_tokens, 96u) << "-b " << b;
    }
}

TEST(ProfileHardening, RefusesAnOutputThatIsAnInput) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string data  = dir + "/calib.jsonl";
    {
        std::ifstream src(k_sample);
        std::ofstream(data) << src.rdbuf();
    }
    ASSERT_EQ(::symlink(model.c_str(), (dir + "/model-link.gguf").c_str()), 0);
    ASSERT_EQ(::link(data.c_str(), (dir + "/data-hardlink.json").c_str()), 0);
    const auto model_before = test::read_bytes(model), data_before = test::read_bytes(data);
    for (const std::string & out : {model, data, dir + "/model-link.gguf", dir + "/data-hardlink.json"}) {
        const auto r =
            test::run_reap({"profile", "-m", model, "--data", data, "--max-samples", "2", "-o", out, "--no-progress"});
        EXPECT_EQ(r.exit_code, 1) << out << ": " << r.err;
        EXPECT_NE(r.err.find("is also an input"), std::string::npos) << r.err;
    }
    EXPECT_TRUE(test::read_bytes(model) == model_before) << "the model was overwritten";
    EXPECT_TRUE(test::read_bytes(data) == data_before) << "the calibration data was overwritten";
    // every part of a split model is an input
    const std::string first = test::write_splits(model, dir + "/split", 3);
    const std::string third = dir + "/split-00003-of-00003.gguf";
    const auto        r     = test::run_reap({"profile", "-m", first, "--data", data, "-o", third, "--no-progress"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("is also an input"), std::string::npos) << r.err;
}

// Issue 21: the same calibration file given twice (also through a link) would count every token
// twice; refused as merge refuses a run given twice, before anything is written.
TEST(ProfileHardening, RefusesTheSameCalibrationFileTwice) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    ASSERT_EQ(::symlink(k_sample.c_str(), (dir + "/again.jsonl").c_str()), 0);
    for (const std::string & second : {k_sample, dir + "/again.jsonl"}) {
        const auto r = test::run_reap({"profile", "-m", model, "--data", k_sample, second, "--max-samples", "2", "-o",
                                       dir + "/s.json", "--no-progress"});
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find(second + ": given twice (also as " + k_sample + "): its tokens would count twice"),
                  std::string::npos)
            << r.err;
        EXPECT_FALSE(std::filesystem::exists(dir + "/s.json"));
    }
}

TEST(ProfileHardening, AnySplitPartNamesTheModel) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    test::write_splits(model, dir + "/split", 3);
    const auto r = test::run_reap({"profile", "-m", dir + "/split-00002-of-00003.gguf", "--data", k_sample,
                                   "--max-samples", "2", "-o", dir + "/s.json", "--no-progress", "-t", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(ExpertStats::load(dir + "/s.json").layers.begin()->second.total_tokens, 0u);
}

TEST(ProfileHardening, ANumberOutOfRangeIsOneSkippedLine) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string data  = std::string(REAP_SOURCE_DIR) + "/tests/data/fuzz/cal_overflow.jsonl";
    const auto r = test::run_reap({"profile", "-m", model, "--data", data, "-o", dir + "/s.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(data + ":"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
    EXPECT_EQ(ExpertStats::load(dir + "/s.json").meta["calibration"][0]["skipped_lines"], 1);
    const auto strict = test::run_reap({"profile", "-m", model, "--data", data, "-o", dir + "/t.json", "--strict"});
    EXPECT_EQ(strict.exit_code, 1);
    EXPECT_NE(strict.err.find(data + ":"), std::string::npos) << strict.err;
}

TEST(ProfileHardening, BinaryDataIsRefusedAndWarningsAreCapped) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    // a model file given as calibration data
    const auto bin = test::run_reap({"profile", "-m", model, "--data", model, "-o", dir + "/s.json"});
    EXPECT_EQ(bin.exit_code, 1) << bin.err;
    EXPECT_NE(bin.err.find("binary data"), std::string::npos) << bin.err;
    // many malformed lines: a few reported, the rest counted
    const std::string data = dir + "/noisy.jsonl";
    {
        std::ofstream f(data);
        f << R"({"text": "one good line"})"
             "\n";
        for (int i = 0; i < 50; i++)
            f << "not json " << i << "\n";
    }
    const auto r = test::run_reap({"profile", "-m", model, "--data", data, "-o", dir + "/t.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    size_t warnings = 0;
    for (size_t at = r.err.find("line skipped"); at != std::string::npos; at = r.err.find("line skipped", at + 1)) {
        warnings++;
    }
    EXPECT_EQ(warnings, 10u) << r.err;
    EXPECT_NE(r.err.find("40 more malformed lines skipped"), std::string::npos) << r.err;
}

TEST(ProfileHardening, LongSamplesBecomeWindowsNotCut) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    std::ifstream     src(std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt");
    std::stringstream ss;
    ss << src.rdbuf();
    // The same text as one JSONL sample and as a .txt file: with -c 64 the sample's windows are
    // the .txt's (llama-imatrix's) and its tail too, so nothing of the long sample is dropped.
    std::ofstream(dir + "/one.jsonl") << json({{"text", ss.str()}}).dump() << "\n";
    std::ofstream(dir + "/doc.txt") << ss.str();
    const auto a = test::run_reap({"profile", "-m", model, "--data", dir + "/one.jsonl", "-c", "64", "-o",
                                   dir + "/a.json", "--no-progress", "-t", "1"});
    const auto b = test::run_reap({"profile", "-m", model, "--data", dir + "/doc.txt", "-c", "64", "-o",
                                   dir + "/b.json", "--no-progress", "-t", "1"});
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    const ExpertStats sa = ExpertStats::load(dir + "/a.json"), sb = ExpertStats::load(dir + "/b.json");
    EXPECT_GT(sa.layers.begin()->second.total_tokens, 256u);
    const uint64_t tail = sa.layers.begin()->second.total_tokens - sb.layers.begin()->second.total_tokens;
    EXPECT_GT(tail, 0u);   // the .txt leaves its tail out, as llama-imatrix does
    EXPECT_LT(tail, 64u);  // and only that
    // the sample's windows: the .txt's and its tail's
    EXPECT_EQ(sa.meta["calibration"][0]["samples"].get<int>(), sb.meta["calibration"][0]["samples"].get<int>() + 1);
    // the run says how the data was used
    EXPECT_NE(a.out.find("calibration: 1 samples in "), std::string::npos) << a.out;
    const auto c = test::run_reap({"profile", "-m", model, "--data", dir + "/one.jsonl", "-c", "64", "--max-tokens",
                                   "100", "-o", dir + "/c.json", "--no-progress", "-t", "1"});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.out.find("left out by --max-samples/--max-tokens"), std::string::npos) << c.out;
}

TEST(ProfileHardening, ProgressShowsTheStartAndOneFinalLine) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    // stderr is a file here: one line per report, no redrawing.
    const auto r = test::run_reap(
        {"profile", "-m", model, "--data", k_sample, "--max-samples", "4", "-o", dir + "/s.json", "-t", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("profile: 0/"), std::string::npos) << r.err;
    std::vector<std::string> lines;
    std::stringstream        err(r.err);
    for (std::string l; std::getline(err, l);) {
        if (l.rfind("profile: ", 0) == 0) lines.push_back(l.substr(0, l.find(" elapsed")));
    }
    ASSERT_GE(lines.size(), 2u) << r.err;
    EXPECT_NE(lines[lines.size() - 1], lines[lines.size() - 2]) << r.err;
}

TEST(ProfileHardening, ChatTemplateOptionAndUnrenderableSamples) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string chat  = dir + "/chat.jsonl";
    std::ofstream(chat) << R"({"messages": [{"role": "user", "content": "What is two plus two?"}]})"
                           "\n"
                        << R"({"text": "A plain text sample."})"
                           "\n";
    auto profile = [&](std::vector<std::string> extra, const std::string & out) {
        std::vector<std::string> args = {"profile", "-m", model,           "--data",
                                         chat,      "-o", dir + "/" + out, "--no-progress"};
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_reap(args);
    };
    const auto own = profile({}, "own.json");
    ASSERT_EQ(own.exit_code, 0) << own.err;
    const auto chatml = profile({"--chat-template", "chatml"}, "chatml.json");
    ASSERT_EQ(chatml.exit_code, 0) << chatml.err;
    EXPECT_EQ(ExpertStats::load(dir + "/chatml.json").meta["calibration"][0]["samples"], 2);
    // a name llama.cpp does not know: refused up front
    const auto bogus = profile({"--chat-template", "no-such-template"}, "bogus.json");
    EXPECT_EQ(bogus.exit_code, 1);
    EXPECT_NE(bogus.err.find("no-such-template: neither a file nor one of llama.cpp's templates"), std::string::npos)
        << bogus.err;
    // a template llama.cpp's renderer cannot use: the chat sample is skipped, or fatal with --strict
    std::ofstream(dir + "/t.jinja") << "{{ something llama.cpp has never seen }}";
    const auto skip = profile({"--chat-template", dir + "/t.jinja"}, "skip.json");
    ASSERT_EQ(skip.exit_code, 0) << skip.err;
    EXPECT_NE(skip.err.find(chat + ":1: "), std::string::npos) << skip.err;
    EXPECT_NE(skip.err.find("sample skipped"), std::string::npos) << skip.err;
    const ExpertStats s = ExpertStats::load(dir + "/skip.json");
    EXPECT_EQ(s.meta["calibration"][0]["samples"], 1);
    EXPECT_EQ(s.meta["calibration"][0]["skipped_lines"], 1);
    const auto strict = profile({"--chat-template", dir + "/t.jinja", "--strict"}, "strict.json");
    EXPECT_EQ(strict.exit_code, 1);
    EXPECT_NE(strict.err.find(chat + ":1: "), std::string::npos) << strict.err;
}

TEST(ProfileHardening, ResumeRefusesAModelOfTheSameShapeWithOtherWeights) {
    synth::Options other    = small("qwen3moe");
    other.seed              = 7;
    const std::string model = test::synth_model(small("qwen3moe")), model7 = test::synth_model(other);
    const std::string dir = test::tmp_dir();
    const std::string out = dir + "/s.json";
    ASSERT_EQ(
        test::run_reap({"profile", "-m", model, "--data", k_sample, "--max-samples", "4", "-o", out, "--no-progress"})
            .exit_code,
        0);
    const auto before = test::read_bytes(out);
    const auto r      = test::run_reap(
             {"profile", "-m", model7, "--data", k_sample, "--max-samples", "4", "-o", out, "--resume", "--no-progress"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("statistics of different models"), std::string::npos) << r.err;
    EXPECT_TRUE(test::read_bytes(out) == before) << "the checkpoint was touched";
    // the same model resumes (nothing left to do)
    const auto same = test::run_reap(
        {"profile", "-m", model, "--data", k_sample, "--max-samples", "4", "-o", out, "--resume", "--no-progress"});
    EXPECT_EQ(same.exit_code, 0) << same.err;
}

}  // namespace
