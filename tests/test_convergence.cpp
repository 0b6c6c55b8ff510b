// Calibration convergence: the profile keeps its sums at 1/8, 1/4 and 1/2 of its tokens
// (milestones); merged runs merge them, resumed runs keep them; prune and report compare the
// drop set from half the tokens with the one from all of them.
#include "core/error.h"
#include "profile/profiler.h"
#include "prune/convergence.h"
#include "stats/expert_stats.h"
#include "stats/milestones.h"
#include "support.h"
#include "synth/synth.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

// One layer of 4 experts, each routed once per token it is given; reap_sum as given.
LayerStats layer_with(std::vector<double> reap_sum, uint64_t tokens) {
    LayerStats L(reap_sum.size());
    L.total_tokens = tokens;
    for (size_t e = 0; e < reap_sum.size(); e++) {
        L.count[e]    = 1;
        L.reap_sum[e] = reap_sum[e];
        L.ean_sum[e]  = reap_sum[e];
        L.gate_sum[e] = 1;
    }
    return L;
}

TEST(Milestones, RecordedOnceWhenCrossedAndNotAtTheEnd) {
    ExpertStats s;
    s.layers.emplace(0, layer_with({1, 2, 3, 4}, 0));
    record_milestones(s, 10, 100);  // below 1/8
    EXPECT_TRUE(s.milestones.empty());
    s.layers.at(0).total_tokens = 13;
    record_milestones(s, 13, 100);
    ASSERT_EQ(s.milestones.size(), 1u);
    EXPECT_EQ(s.milestones[0].fraction, 0.125);
    EXPECT_EQ(s.milestones[0].tokens, 13u);
    EXPECT_EQ(s.milestones[0].layers.at(0).total_tokens, 13u);
    s.layers.at(0).total_tokens = 60;
    record_milestones(s, 60, 100);  // one batch past 1/4 and 1/2: both, with the tokens truly done
    ASSERT_EQ(s.milestones.size(), 3u);
    EXPECT_EQ(s.milestones[1].fraction, 0.25);
    EXPECT_EQ(s.milestones[2].fraction, 0.5);
    EXPECT_EQ(s.milestones[2].tokens, 60u);
    record_milestones(s, 70, 100);
    EXPECT_EQ(s.milestones.size(), 3u);  // each once
    ExpertStats one_batch;
    one_batch.layers.emplace(0, layer_with({1, 2, 3, 4}, 100));
    record_milestones(one_batch, 100, 100);  // the end is the stats themselves
    EXPECT_TRUE(one_batch.milestones.empty());
}

TEST(Milestones, SurviveTheFileMergeAndAreDroppedWhenOneRunLacksThem) {
    ExpertStats a, b;
    a.layers.emplace(3, layer_with({1, 2, 3, 4}, 40));
    b.layers.emplace(3, layer_with({4, 3, 2, 1}, 80));
    a.milestones.push_back({0.5, 20, {{3, layer_with({1, 1, 1, 1}, 20)}}});
    b.milestones.push_back({0.5, 40, {{3, layer_with({0, 1, 0, 1}, 40)}}});
    b.milestones.push_back({0.25, 20, {{3, layer_with({0, 1, 0, 0}, 20)}}});

    const ExpertStats r = ExpertStats::from_json(a.to_json(), "a.json");
    ASSERT_EQ(r.milestones.size(), 1u);
    EXPECT_EQ(r.milestones[0].tokens, 20u);
    EXPECT_EQ(r.milestones[0].layers.at(3).reap_sum, (std::vector<double>{1, 1, 1, 1}));

    ExpertStats m = a;
    m.merge(b, "b.json");
    ASSERT_EQ(m.milestones.size(), 1u);  // 1/4 only in b: unknown for the merged run
    EXPECT_EQ(m.milestones[0].fraction, 0.5);
    EXPECT_EQ(m.milestones[0].tokens, 60u);
    EXPECT_EQ(m.milestones[0].layers.at(3).reap_sum, (std::vector<double>{1, 2, 1, 2}));
    EXPECT_EQ(m.milestones[0].layers.at(3).total_tokens, 60u);

    ExpertStats old = b;
    old.milestones.clear();
    m.merge(old, "old.json");
    EXPECT_TRUE(m.milestones.empty());

    // A milestone of other layers, more tokens than the run, or a bad entry is refused.
    json bad                                                = a.to_json();
    bad[k_milestones_key][0]["layers"]["3"]["total_tokens"] = 41;
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
    bad                                     = a.to_json();
    bad[k_milestones_key][0]["layers"]["4"] = bad[k_milestones_key][0]["layers"]["3"];
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
    bad                                  = a.to_json();
    bad[k_milestones_key][0]["fraction"] = 1.5;
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
    bad[k_milestones_key] = 7;
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
}

// Jaccard of the drop sets by hand: layer 0 drops {0, 1} from all tokens but {0, 2} from half
// (1 common of 3: 1/3); layer 1 drops {2, 3} both times (1).
TEST(Convergence, JaccardOfHalfAgainstAllMatchesHandComputation) {
    ExpertStats s;
    s.layers.emplace(0, layer_with({1, 2, 3, 4}, 100));
    s.layers.emplace(1, layer_with({4, 3, 2, 1}, 100));
    MoeShape shape;
    shape.n_expert   = 4;
    shape.moe_layers = {0, 1};
    EXPECT_FALSE(drop_set_convergence(s, shape, Criterion::reap_sum, 2, 0).available);

    s.milestones.push_back({0.5, 50, {{0, layer_with({1, 3, 2, 4}, 50)}, {1, layer_with({4, 3, 1, 2}, 50)}}});
    const Convergence c = drop_set_convergence(s, shape, Criterion::reap_sum, 2, 0);
    ASSERT_TRUE(c.available);
    ASSERT_EQ(c.layers.size(), 2u);
    EXPECT_DOUBLE_EQ(c.layers[0].jaccard, 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(c.layers[1].jaccard, 1.0);
    EXPECT_DOUBLE_EQ(c.min, 1.0 / 3.0);
    EXPECT_EQ(c.min_layer, 0);
    EXPECT_DOUBLE_EQ(c.mean, (1.0 / 3.0 + 1.0) / 2);
    EXPECT_TRUE(c.moving);
    EXPECT_NE(c.summary().find("still moving"), std::string::npos) << c.summary();
    EXPECT_EQ(c.tokens, 50u);
    EXPECT_EQ(c.total_tokens, 100u);

    // The same order at half the tokens: settled.
    s.milestones[0].layers.at(0) = layer_with({1, 2, 4, 3}, 50);
    const Convergence settled    = drop_set_convergence(s, shape, Criterion::reap_sum, 2, 0);
    EXPECT_DOUBLE_EQ(settled.mean, 1.0);
    EXPECT_FALSE(settled.moving);
    EXPECT_EQ(settled.summary().find("still moving"), std::string::npos);
}

// End to end: a run of one sample per decode keeps its half-way sums, which equal a run over
// exactly those first tokens; prune and report print the comparison, and the plan records it.
TEST(Convergence, ProfileKeepsHalfWaySumsAndPruneAndReportPrintTheOverlap) {
    synth::Options o;
    o.n_layer               = 2;
    o.n_embd                = 64;
    o.n_ff                  = 64;
    o.type                  = GGML_TYPE_F32;
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const std::string all   = dir + "/all.json";
    auto r = test::run_reap({"profile", "-m", model, "--data", k_sample, "--max-samples", "12", "--no-pack", "-t", "1",
                             "-o", all, "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ExpertStats      s    = ExpertStats::load(all);
    const StatsMilestone * half = find_milestone(s, 0.5);
    ASSERT_NE(half, nullptr);
    ASSERT_EQ(s.milestones.size(), 3u);
    const uint64_t total = s.layers.begin()->second.total_tokens;
    EXPECT_GE(double(half->tokens), 0.5 * double(total));
    EXPECT_LT(half->tokens, total);
    EXPECT_LT(find_milestone(s, 0.125)->tokens, find_milestone(s, 0.25)->tokens);

    // The half-way sums are those of a run over exactly the first half->tokens tokens.
    const std::string first = dir + "/first.json";
    r = test::run_reap({"profile", "-m", model, "--data", k_sample, "--max-samples", "12", "--max-tokens",
                        std::to_string(half->tokens), "--no-pack", "-t", "1", "-o", first, "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const ExpertStats f = ExpertStats::load(first);
    for (const auto & [il, L] : half->layers) {
        const LayerStats & F = f.layers.at(il);
        EXPECT_EQ(L.total_tokens, F.total_tokens);
        EXPECT_EQ(L.count, F.count) << "layer " << il;
        for (size_t e = 0; e < L.n_expert(); e++) {
            EXPECT_NEAR(L.reap_sum[e], F.reap_sum[e], 1e-9 * std::max(1.0, F.reap_sum[e])) << il << "/" << e;
            EXPECT_NEAR(L.out_max[e], F.out_max[e], 1e-9 * std::max(1.0, F.out_max[e])) << il << "/" << e;
        }
    }

    r = test::run_reap({"prune", "-m", model, "--stats", all, "--keep-ratio", "0.5", "--dry-run", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("calibration convergence: drop set from the first " + std::to_string(half->tokens)),
              std::string::npos)
        << r.err;
    const json plan = json::parse(r.out);
    ASSERT_TRUE(plan.contains("calibration_convergence")) << r.out;
    const json & c = plan["calibration_convergence"];
    EXPECT_EQ(c["tokens"], half->tokens);
    EXPECT_EQ(c["jaccard_per_layer"].size(), s.layers.size());
    EXPECT_EQ(c["still_moving"].get<bool>(), c["jaccard_mean"].get<double>() < k_convergence_warn_below);
    EXPECT_EQ(r.err.find("reap: warning: keeping") != std::string::npos, c["still_moving"].get<bool>()) << r.err;
    EXPECT_EQ(r.err.find("WARNING"), std::string::npos) << "one prefix: " << r.err;

    const auto rep = test::run_reap({"report", all, "-o", dir + "/r.html"});
    ASSERT_EQ(rep.exit_code, 0) << rep.err;
    EXPECT_NE(rep.out.find("calibration convergence: drop set from the first"), std::string::npos) << rep.out;
}

}  // namespace
