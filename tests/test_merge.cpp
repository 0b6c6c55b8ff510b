// reap merge: runs on halves of a calibration set add up to a run on the whole.
#include "core/error.h"
#include "gguf/content_id.h"
#include "gguf/gguf_file.h"
#include "stats/expert_stats.h"
#include "stats/stats_merge.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace reap;

namespace {

TEST(Merge, TwoHalvesEqualTheWhole) {
    synth::Options o;
    o.n_layer               = 3;
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    std::ifstream     in(std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl");
    std::ofstream     a(dir + "/a.jsonl"), b(dir + "/b.jsonl");
    std::string       line;
    for (int i = 0; std::getline(in, line) && i < 30; i++)
        (i < 12 ? a : b) << line << "\n";
    a.close();
    b.close();
    // One sample per decode in all three runs, so every token is computed the same way.
    auto profile = [&](std::vector<std::string> data, const std::string & out) {
        std::vector<std::string> args = {"profile", "-m", model, "--no-pack", "--no-progress", "-o", out};
        for (auto & d : data)
            args.insert(args.end(), {"--data", d});
        const auto r = test::run_reap(args);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    };
    profile({dir + "/a.jsonl"}, dir + "/a.json");
    profile({dir + "/b.jsonl"}, dir + "/b.json");
    profile({dir + "/a.jsonl", dir + "/b.jsonl"}, dir + "/whole.json");
    const auto r = test::run_reap({"merge", dir + "/a.json", dir + "/b.json", "-o", dir + "/merged.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;

    const ExpertStats m = ExpertStats::load(dir + "/merged.json"), w = ExpertStats::load(dir + "/whole.json");
    ASSERT_EQ(m.layers.size(), w.layers.size());
    for (const auto & [il, L] : w.layers) {
        const LayerStats & M = m.layers.at(il);
        EXPECT_EQ(M.total_tokens, L.total_tokens);
        EXPECT_EQ(M.count, L.count);
        for (size_t e = 0; e < L.n_expert(); e++) {
            EXPECT_NEAR(M.reap_sum[e], L.reap_sum[e], 1e-9 * std::max(1.0, L.reap_sum[e]));
            EXPECT_NEAR(M.gate_sum[e], L.gate_sum[e], 1e-9 * std::max(1.0, L.gate_sum[e]));
            EXPECT_NEAR(M.ean_sum[e], L.ean_sum[e], 1e-9 * std::max(1.0, L.ean_sum[e]));
            EXPECT_DOUBLE_EQ(M.reap_max[e], L.reap_max[e]);
        }
    }
    EXPECT_EQ(m.meta.tokens, w.meta.tokens);
    EXPECT_EQ(m.meta.calibration.size(), 2u);
    EXPECT_EQ(m.meta.merged_from.size(), 2u);
}

TEST(Merge, RefusesDifferentModelsAndBadFiles) {
    const std::string dir = test::tmp_dir();
    synth::Options    o;
    o.n_layer         = 2;
    synth::Options o8 = o;
    o8.n_expert = 8, o8.n_expert_used = 2;
    const std::string data = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
    for (auto [opt, out] : {std::pair{o, dir + "/16.json"}, std::pair{o8, dir + "/8.json"}}) {
        const auto r = test::run_reap({"profile", "-m", test::synth_model(opt), "--data", data, "--max-samples", "4",
                                       "-o", out, "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    auto refuse = [&](std::vector<std::string> args, const std::string & why) {
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_FALSE(std::ifstream(dir + "/m.json").good());
    };
    refuse({"merge", dir + "/16.json", dir + "/8.json", "-o", dir + "/m.json"}, "different models");
    refuse({"merge", dir + "/16.json", dir + "/missing.json", "-o", dir + "/m.json"}, "missing.json");
    test::write_bytes(dir + "/bad.json", "{\"0\": [", 7);
    refuse({"merge", dir + "/16.json", dir + "/bad.json", "-o", dir + "/m.json"}, "bad.json: not valid JSON");
}

// The same run twice would count its tokens twice: by path, through a link, or as a copy.
TEST(Merge, RefusesTheSameFileTwice) {
    synth::Options o;
    o.n_layer             = 2;
    const std::string dir = test::tmp_dir();
    const std::string a   = dir + "/a.json";
    const auto        r   = test::run_reap({"profile", "-m", test::synth_model(o), "--data",
                                            std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl", "--max-samples",
                                            "4", "-o", a, "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::filesystem::create_symlink(a, dir + "/link.json");
    std::filesystem::create_hard_link(a, dir + "/hard.json");
    std::filesystem::copy_file(a, dir + "/copy.json");
    for (const char * second : {"/a.json", "/link.json", "/hard.json", "/copy.json"}) {
        const auto m = test::run_reap({"merge", a, dir + second, "-o", dir + "/m.json"});
        EXPECT_EQ(m.exit_code, 1) << second;
        EXPECT_NE(m.err.find("its tokens would count twice"), std::string::npos) << m.err;
        EXPECT_EQ(std::count(m.err.begin(), m.err.end(), '\n'), 1) << m.err;
        EXPECT_FALSE(std::ifstream(dir + "/m.json").good());
    }
    // Nor may the merged file replace one of the runs it adds up.
    const auto before = test::read_bytes(a);
    const auto over   = test::run_reap({"merge", a, dir + "/copy.json", "-o", dir + "/link.json"});
    EXPECT_EQ(over.exit_code, 1);
    EXPECT_NE(over.err.find("is also an input"), std::string::npos) << over.err;
    EXPECT_TRUE(test::read_bytes(a) == before);
}

TEST(Merge, RefusesAnotherModelOfTheSameShape) {
    synth::Options o;
    o.n_layer              = 2;
    synth::Options o7      = o;
    o7.seed                = 7;  // same shape, other weights
    const std::string dir  = test::tmp_dir();
    const std::string data = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
    for (auto [opt, out] : {std::pair{o, dir + "/a.json"}, std::pair{o7, dir + "/b.json"}}) {
        const auto r = test::run_reap({"profile", "-m", test::synth_model(opt), "--data", data, "--max-samples", "4",
                                       "-o", out, "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    ASSERT_NE(ExpertStats::load(dir + "/a.json").meta.model, ExpertStats::load(dir + "/b.json").meta.model);
    const auto m = test::run_reap({"merge", dir + "/a.json", dir + "/b.json", "-o", dir + "/m.json"});
    EXPECT_EQ(m.exit_code, 1);
    EXPECT_NE(m.err.find(dir + "/b.json: router_fingerprint is"), std::string::npos) << m.err;
    EXPECT_NE(m.err.find("statistics of different models"), std::string::npos) << m.err;
}

// A merged file is as unfinished as its least finished input, and says so.
TEST(Merge, KeepsAnUnfinishedRunVisible) {
    synth::Options o;
    o.n_layer              = 2;
    const std::string dir  = test::tmp_dir();
    const std::string data = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
    for (const char * n : {"4", "6"}) {
        const auto r = test::run_reap({"profile", "-m", test::synth_model(o), "--data", data, "--max-samples", n, "-o",
                                       dir + "/" + n + ".json", "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    ExpertStats partial   = ExpertStats::load(dir + "/6.json");
    partial.meta.progress = StatsProgress{3, 100, false};
    partial.save(dir + "/6.json");

    const ExpertStats m = merge_stats_files({dir + "/4.json", dir + "/6.json"});
    ASSERT_TRUE(m.meta.progress.has_value());
    EXPECT_FALSE(m.meta.progress->complete);
    EXPECT_EQ(m.meta.progress->samples_done, 4u + 3u);
    EXPECT_FALSE(m.meta.fingerprint.has_value());  // not a checkpoint to resume
    const auto cli = test::run_reap({"merge", dir + "/4.json", dir + "/6.json", "-o", dir + "/m.json"});
    EXPECT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_NE(cli.err.find("reap: warning: an input is a checkpoint of an unfinished profile run"), std::string::npos)
        << cli.err;
    EXPECT_EQ(cli.err.find("WARNING"), std::string::npos) << "one prefix: " << cli.err;
    EXPECT_FALSE(ExpertStats::load(dir + "/m.json").meta.complete());

    // Finished inputs give a finished result, with no progress record.
    partial.meta.progress = StatsProgress{6, 200, true};
    partial.save(dir + "/6.json");
    EXPECT_TRUE(merge_stats_files({dir + "/4.json", dir + "/6.json"}).meta.complete());
}

// profile --resume goes through the same check: a checkpoint of another model of the same shape
// (other weights) is refused instead of being finished with this model's tokens.
TEST(SameModelCheck, ResumeRefusesACheckpointOfAnotherModel) {
    synth::Options o;
    o.n_layer                 = 2;
    synth::Options o7         = o;
    o7.seed                   = 7;
    const std::string dir     = test::tmp_dir();
    const std::string data    = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
    const std::string ckpt    = dir + "/ckpt.json";
    auto              profile = [&](const synth::Options & m, bool resume) {
        std::vector<std::string> args = {"profile", "-m", test::synth_model(m), "--data", data, "--max-samples", "4",
                                         "-o",      ckpt, "--no-progress"};
        if (resume) args.push_back("--resume");
        return test::run_reap(args);
    };
    ASSERT_EQ(profile(o7, false).exit_code, 0);
    const auto before = test::read_bytes(ckpt);
    const auto r      = profile(o, true);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(ckpt + ": router_fingerprint is"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("in the model being profiled: statistics of different models"), std::string::npos) << r.err;
    EXPECT_TRUE(test::read_bytes(ckpt) == before);
    EXPECT_EQ(profile(o7, true).exit_code, 0);  // its own model resumes
}

// Stats record the model by content, as base logits and sweeps do (gguf/content_id.h): runs of a
// renamed copy add up, runs of a model of the same name and size with other weights do not
// (issue 29, item 14: name and size were the identity).
TEST(SameModelCheck, TheModelsContentIsTheIdentity) {
    StatsMeta a;
    a.model            = "m.gguf";
    a.model_size       = 100;
    a.model_content_id = "00000000000000aa";
    StatsMeta renamed  = a;
    renamed.model      = "copy.gguf";
    EXPECT_NO_THROW(check_same_model(a, renamed, "copy.json"));
    StatsMeta other        = a;
    other.model_content_id = "00000000000000bb";
    EXPECT_THROW(check_same_model(a, other, "other.json"), Error);
    StatsMeta old = a;  // from before the content was recorded: name and size
    old.model_content_id.reset();
    EXPECT_NO_THROW(check_same_model(a, old, "old.json"));
    old.model_size = 101;
    EXPECT_THROW(check_same_model(a, old, "old.json"), Error);
    // Written and read back.
    EXPECT_EQ(StatsMeta::parse(a.to_json(), "x").model_content_id, a.model_content_id);

    // profile records it: the content id of the model it ran.
    const std::string model = std::string(REAP_SOURCE_DIR) + "/data/models/tiny-moe-q8_0.gguf";
    const std::string stats = test::profile(model, test::tmp_dir() + "/s.json", 2);
    EXPECT_EQ(ExpertStats::load(stats).meta.model_content_id, model_content_id_text(GgufFile::open(model)));
}

}  // namespace
