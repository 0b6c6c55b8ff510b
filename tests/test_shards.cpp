// reap profile --shard i/N and reap merge: the N shards of a run merge to the unsharded run;
// merge refuses overlapping and foreign shards and names missing ones.
#include "stats/expert_stats.h"
#include "support.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace reap;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

std::string model3() {
    synth::Options o;
    o.n_layer = 3;
    return test::synth_model(o);
}

// One sample per decode (--no-pack), so every token is computed the same way in every run.
test::RunResult profile(const std::string & out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"profile",       "-m", model3(),    "--data",        k_sample, "-o", out,
                                     "--max-samples", "20", "--no-pack", "--no-progress", "-t",     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_reap(args);
}

TEST(Shards, AllShardsMergeToTheWholeRun) {
    const std::string dir = test::tmp_dir();
    ASSERT_EQ(profile(dir + "/whole.json", {"--seed", "7"}).exit_code, 0);
    std::vector<std::string> merge = {"merge"};
    for (int i = 1; i <= 3; i++) {
        const std::string out = dir + "/s" + std::to_string(i) + ".json";
        const auto        r   = profile(out, {"--seed", "7", "--shard", std::to_string(i) + "/3"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find("shard " + std::to_string(i) + "/3"), std::string::npos) << r.out;
        const ExpertStats s = ExpertStats::load(out);
        ASSERT_TRUE(s.meta.shard.has_value());
        EXPECT_EQ(s.meta.shard->count, 3u);
        EXPECT_EQ(s.meta.shard->indices, std::vector<uint32_t>{uint32_t(i)});
        merge.push_back(out);
    }
    merge.insert(merge.end(), {"-o", dir + "/merged.json"});
    const auto r = test::run_reap(merge);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("missing"), std::string::npos) << r.err;

    const ExpertStats m = ExpertStats::load(dir + "/merged.json"), w = ExpertStats::load(dir + "/whole.json");
    EXPECT_FALSE(m.meta.shard.has_value());  // all shards: the whole run
    EXPECT_EQ(m.meta.tokens, w.meta.tokens);
    ASSERT_EQ(m.layers.size(), w.layers.size());
    for (const auto & [il, W] : w.layers) {
        const LayerStats & M = m.layers.at(il);
        EXPECT_EQ(M.total_tokens, W.total_tokens);
        EXPECT_EQ(M.count, W.count);
        for (size_t e = 0; e < W.n_expert(); e++) {
            EXPECT_NEAR(M.reap_sum[e], W.reap_sum[e], 1e-9 * std::max(1.0, W.reap_sum[e]));
            EXPECT_NEAR(M.gate_sum[e], W.gate_sum[e], 1e-9 * std::max(1.0, W.gate_sum[e]));
            EXPECT_DOUBLE_EQ(M.reap_max[e], W.reap_max[e]);
        }
    }
}

TEST(Shards, MergeRefusesOverlapsAndForeignShardsAndNamesMissingOnes) {
    const std::string dir = test::tmp_dir();
    for (int i = 1; i <= 3; i++) {
        ASSERT_EQ(profile(dir + "/s" + std::to_string(i) + ".json", {"--shard", std::to_string(i) + "/3"}).exit_code,
                  0);
    }
    ASSERT_EQ(profile(dir + "/other.json", {"--shard", "3/3", "--seed", "5"}).exit_code, 0);  // other data order
    ASSERT_EQ(profile(dir + "/of4.json", {"--shard", "3/4"}).exit_code, 0);
    ASSERT_EQ(profile(dir + "/whole.json", {}).exit_code, 0);

    // Missing shard: merged, with a warning naming it; the result records what it covers.
    auto r = test::run_reap({"merge", dir + "/s1.json", dir + "/s2.json", "-o", dir + "/s12.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("shards 3 of 3 are missing"), std::string::npos) << r.err;
    const ExpertStats s12 = ExpertStats::load(dir + "/s12.json");
    ASSERT_TRUE(s12.meta.shard.has_value());
    EXPECT_EQ(s12.meta.shard->indices, (std::vector<uint32_t>{1, 2}));
    // ... and completed later: no warning.
    r = test::run_reap({"merge", dir + "/s12.json", dir + "/s3.json", "-o", dir + "/all.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("missing"), std::string::npos) << r.err;
    EXPECT_FALSE(ExpertStats::load(dir + "/all.json").meta.shard.has_value());

    // Overlap: shard 1 inside s12 and again on its own.
    r = test::run_reap({"merge", dir + "/s12.json", dir + "/s1.json", "-o", dir + "/x.json"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("shard 1/3 is also in an earlier input"), std::string::npos) << r.err;
    // Foreign shards: other data (another --seed), other sharding (N=4), not a shard at all.
    r = test::run_reap({"merge", dir + "/s1.json", dir + "/other.json", "-o", dir + "/x.json"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("other.json: a shard of another sharding or other data"), std::string::npos) << r.err;
    r = test::run_reap({"merge", dir + "/s1.json", dir + "/of4.json", "-o", dir + "/x.json"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("of4.json: a shard of another sharding"), std::string::npos) << r.err;
    r = test::run_reap({"merge", dir + "/whole.json", dir + "/s1.json", "-o", dir + "/x.json"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("not a shard of a sharded run"), std::string::npos) << r.err;

    // Bad --shard values are usage errors of profile, caught before any work.
    for (const char * bad : {"0/3", "4/3", "1/0", "a/b", "1", "1/3/4"}) {
        r = profile(dir + "/bad.json", {"--shard", bad});
        EXPECT_EQ(r.exit_code, 2) << bad;
        EXPECT_NE(r.err.find("--shard"), std::string::npos) << r.err;
    }
}

}  // namespace
