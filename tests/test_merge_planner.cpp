// The merge planner (prune/merge_planner): ream's and msmoe's groups and coefficients on hand-made
// statistics and similarity matrices with a planted structure, the plans checked and saved, and
// `reap prune --merge`'s refusals.
#include "core/error.h"
#include "prune/merge_planner.h"
#include "prune/prune_request.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <cmath>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

using namespace reap;

namespace {

const std::string k_tiny = std::string(REAP_SOURCE_DIR) + "/data/models/tiny-moe-q8_0.gguf";

MoeShape shape_of(uint32_t n_expert, uint32_t groups = 0) {
    MoeShape m;
    m.arch            = "qwen3moe";
    m.n_layer         = 2;
    m.n_expert        = n_expert;
    m.n_expert_used   = 2;
    m.n_expert_groups = groups;
    m.n_group_used    = groups ? 1 : 0;
    m.moe_layers      = {1};
    return m;
}

// One layer whose REAP scores (mean g·‖f‖) are `reap` and whose activation counts are `count`.
ExpertStats stats_of(const std::vector<double> & reap, const std::vector<uint64_t> & count) {
    LayerStats L(reap.size());
    for (size_t e = 0; e < reap.size(); e++) {
        L.count[e]    = count[e];
        L.reap_sum[e] = reap[e] * double(count[e]);
        L.ean_sum[e]  = L.reap_sum[e];
        L.gate_sum[e] = double(count[e]);
        L.total_tokens += count[e];
    }
    ExpertStats s;
    s.layers.emplace(1, L);
    return s;
}

// n x n similarity `base` everywhere, 1 on the diagonal, `v` for each planted pair.
std::vector<double> matrix(uint32_t n, double base, const std::vector<std::pair<uint32_t, uint32_t>> & pairs,
                           double v) {
    std::vector<double> m(size_t(n) * n, base);
    for (uint32_t e = 0; e < n; e++)
        m[size_t(e) * n + e] = 1.0;
    for (const auto & pr : pairs) {
        m[size_t(pr.first) * n + pr.second] = v;
        m[size_t(pr.second) * n + pr.first] = v;
    }
    return m;
}

std::map<int, LayerSimilarity> sim_of(std::vector<double> router, std::vector<double> output, uint32_t n) {
    LayerSimilarity s;
    s.router = std::move(router);
    s.output = std::move(output);
    s.n      = n;
    return {{1, s}};
}

std::vector<uint32_t> sources_of(const Slot & s) {
    std::vector<uint32_t> ids;
    for (const auto & so : s.sources)
        ids.push_back(so.expert);
    return ids;
}

double weight_sum(const Slot & s) {
    double sum = 0;
    for (const auto & so : s.sources)
        sum += so.weight;
    return sum;
}

// 8 experts, 0-3 the most salient (8, 7, 6, 5), each planted next to one of 4-7 (similarity 0.9
// in both matrices, 0.1 elsewhere): 0-5, 1-4, 2-7, 3-6.
const std::vector<double>                        k_reap    = {8, 7, 6, 5, 1, 2, 3, 4};
const std::vector<uint64_t>                      k_count   = {10, 10, 10, 10, 10, 10, 10, 10};
const std::vector<std::pair<uint32_t, uint32_t>> k_planted = {{0, 5}, {1, 4}, {2, 7}, {3, 6}};

TEST(MergePlanner, ReamGroupsEachPlantedPartnerWithItsCentroid) {
    const MoeShape    m   = shape_of(8);
    const ExpertStats s   = stats_of(k_reap, k_count);
    const auto        sim = sim_of(matrix(8, 0.1, k_planted, 0.9), matrix(8, 0.1, k_planted, 0.9), 8);
    const Plan        p   = make_merge_plan(s, m, sim, {"ream", "weights", 2}, 4, 0);
    check_plan(p, m, "plan");
    const LayerPlan & lp = p.layers.at(1);
    EXPECT_EQ(lp.kept, (std::vector<uint32_t>{0, 1, 2, 3}));
    EXPECT_EQ(lp.dropped, (std::vector<uint32_t>{4, 5, 6, 7}));
    ASSERT_EQ(lp.slots.size(), 4u);
    EXPECT_EQ(sources_of(lp.slots[0]), (std::vector<uint32_t>{0, 5}));
    EXPECT_EQ(sources_of(lp.slots[1]), (std::vector<uint32_t>{1, 4}));
    EXPECT_EQ(sources_of(lp.slots[2]), (std::vector<uint32_t>{2, 7}));
    EXPECT_EQ(sources_of(lp.slots[3]), (std::vector<uint32_t>{3, 6}));
    // saliency weights: 8 / (8 + 2) and 2 / 10
    EXPECT_NEAR(lp.slots[0].sources[0].weight, 0.8, 1e-12);
    EXPECT_NEAR(lp.slots[0].sources[1].weight, 0.2, 1e-12);
    EXPECT_NEAR(lp.slots[1].sources[0].weight, 7.0 / 8.0, 1e-12);
    for (const Slot & sl : lp.slots)
        EXPECT_NEAR(weight_sum(sl), 1.0, 1e-12);
    EXPECT_EQ(p.criterion, "reap");
    EXPECT_EQ(p.merge.method, "ream");
    EXPECT_EQ(p.merge.align, "weights");
    EXPECT_EQ(p.merge.group_size, 2u);
    EXPECT_EQ(p.expert_count(), 4u);
    EXPECT_TRUE(p.computed());
    EXPECT_EQ(lp.scores, k_reap);
}

// From the most salient centroid down, each takes up to C - 1 of its nearest unassigned experts:
// with the default C (16) the first centroid takes every other expert, with C = 3 two.
TEST(MergePlanner, ReamGroupSizeCapsEachGroupFromTheMostSalientDown) {
    const MoeShape    m = shape_of(8);
    const ExpertStats s = stats_of(k_reap, k_count);
    // 4, 5, 6 near centroid 0; 7 near centroid 1 (0.9; 0.1 elsewhere).
    const auto sim   = sim_of(matrix(8, 0.1, {{0, 4}, {0, 5}, {0, 6}, {1, 7}}, 0.9),
                              matrix(8, 0.1, {{0, 4}, {0, 5}, {0, 6}, {1, 7}}, 0.9), 8);
    const Plan whole = make_merge_plan(s, m, sim, {"ream", "weights", 0}, 4, 0);
    check_plan(whole, m, "plan");
    EXPECT_EQ(whole.merge.group_size, k_ream_default_group_size);
    EXPECT_EQ(k_ream_default_group_size, 16u);
    EXPECT_EQ(sources_of(whole.layers.at(1).slots[0]), (std::vector<uint32_t>{0, 4, 5, 6, 7}));
    EXPECT_EQ(sources_of(whole.layers.at(1).slots[1]), (std::vector<uint32_t>{1}));

    const Plan capped = make_merge_plan(s, m, sim, {"ream", "none", 3}, 4, 0);
    check_plan(capped, m, "plan");
    const LayerPlan & lp = capped.layers.at(1);
    // 6 ties with 4 and 5: lower ids first; then centroid 1 takes 7 and the one left, 6
    EXPECT_EQ(sources_of(lp.slots[0]), (std::vector<uint32_t>{0, 4, 5}));
    EXPECT_EQ(sources_of(lp.slots[1]), (std::vector<uint32_t>{1, 6, 7}));
    EXPECT_EQ(sources_of(lp.slots[2]), (std::vector<uint32_t>{2}));
    EXPECT_EQ(sources_of(lp.slots[3]), (std::vector<uint32_t>{3}));
    for (const Slot & sl : lp.slots)
        EXPECT_LE(sl.sources.size(), 3u);
    EXPECT_EQ(capped.merge.align, "none");

    // C = 1 leaves 4 experts in no group: refused, naming the smallest C that works
    try {
        make_merge_plan(s, m, sim, {"ream", "weights", 1}, 4, 0);
        FAIL() << "C = 1 was accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("--merge-group-size 2 or more"), std::string::npos) << e.what();
    }
}

// The distance is 1 - (output + router) / 2: a partner near by one matrix only loses to one
// near by both.
TEST(MergePlanner, ReamDistanceAveragesTheTwoSimilarities) {
    const MoeShape    m = shape_of(4);
    const ExpertStats s = stats_of({4, 3, 1, 1}, {10, 10, 10, 10});
    // centroid 0: expert 2 at router 1.0 / output -0.2 (distance 0.6), expert 3 at 0.5 / 0.5 (0.5)
    auto router = matrix(4, 0.0, {{0, 2}}, 1.0), output = matrix(4, 0.0, {{0, 2}}, -0.2);
    router[3] = router[12] = output[3] = output[12] = 0.5;
    const Plan p = make_merge_plan(s, m, sim_of(router, output, 4), {"ream", "weights", 2}, 2, 0);
    check_plan(p, m, "plan");
    EXPECT_EQ(sources_of(p.layers.at(1).slots[0]), (std::vector<uint32_t>{0, 3}));
    EXPECT_EQ(sources_of(p.layers.at(1).slots[1]), (std::vector<uint32_t>{1, 2}));
}

// A super expert is a centroid whatever its score, as a pruning plan keeps it; it takes its
// nearest experts like any other centroid, in the order of the protected ranking (first).
TEST(MergePlanner, SuperExpertsAreCentroids) {
    const MoeShape    m   = shape_of(8);
    const ExpertStats s   = stats_of(k_reap, k_count);
    const auto        sim = sim_of(matrix(8, 0.1, k_planted, 0.9), matrix(8, 0.1, k_planted, 0.9), 8);
    SuperExperts      supers;
    supers.measured = true;
    supers.experts  = {{1, 6, 100.0, 3, 20.0}};
    const Plan p    = make_merge_plan(s, m, sim, {"ream", "weights", 2}, 4, 0, &supers);
    check_plan(p, m, "plan");
    const LayerPlan & lp = p.layers.at(1);
    EXPECT_EQ(lp.kept, (std::vector<uint32_t>{0, 1, 2, 6}));
    EXPECT_TRUE(p.protect_super_experts);
    ASSERT_EQ(p.protected_experts.size(), 1u);
    EXPECT_TRUE(p.protected_experts[0].criterion_drops);
    EXPECT_EQ(sources_of(lp.slots[3]), (std::vector<uint32_t>{6, 3}));  // its planted partner, 3
    EXPECT_NEAR(lp.slots[3].sources[0].weight, 3.0 / 8.0, 1e-12);       // REAP 3 and 5
}

// Grouped routing: members stay in their centroid's expert group, however similar another group's.
TEST(MergePlanner, MembersStayInTheirExpertGroup) {
    const MoeShape    m = shape_of(8, 2);  // experts 0-3 and 4-7
    const ExpertStats s = stats_of({8, 1, 2, 7, 6, 1, 2, 5}, k_count);
    // 0 is planted next to 5 and 6 (other group); 1 and 2 are far from everything
    const auto sim = sim_of(matrix(8, 0.0, {{0, 5}, {0, 6}}, 0.95), matrix(8, 0.0, {{0, 5}, {0, 6}}, 0.95), 8);
    for (const char * method : {"ream", "msmoe"}) {
        const Plan p = make_merge_plan(s, m, sim, {method, "weights", 0}, 4, 0);
        check_plan(p, m, "plan");
        for (const Slot & sl : p.layers.at(1).slots) {
            for (const auto & so : sl.sources)
                EXPECT_EQ(so.expert / 4, sl.sources[0].expert / 4) << method;
        }
    }
}

// M-SMoE: the most frequent experts are dominant; each other joins the dominant expert with the
// most similar router-logit column (the output similarity plays no part); weights ∝ counts.
TEST(MergePlanner, MsmoeGroupsByRouterSimilarityWithFrequencyWeights) {
    const MoeShape    m = shape_of(8);
    const ExpertStats s = stats_of({1, 1, 1, 1, 9, 9, 9, 9}, {100, 90, 80, 70, 10, 20, 30, 40});
    const std::vector<std::pair<uint32_t, uint32_t>> router_pairs = {{0, 6}, {1, 7}, {2, 4}, {3, 5}};
    const auto sim = sim_of(matrix(8, 0.1, router_pairs, 0.8), matrix(8, 0.1, k_planted, 0.99), 8);
    const Plan p   = make_merge_plan(s, m, sim, {"msmoe", "weights", 5}, 4, 0);
    check_plan(p, m, "plan");
    const LayerPlan & lp = p.layers.at(1);
    EXPECT_EQ(lp.kept, (std::vector<uint32_t>{0, 1, 2, 3}));  // by frequency, not by REAP
    EXPECT_EQ(sources_of(lp.slots[0]), (std::vector<uint32_t>{0, 6}));
    EXPECT_EQ(sources_of(lp.slots[1]), (std::vector<uint32_t>{1, 7}));
    EXPECT_EQ(sources_of(lp.slots[2]), (std::vector<uint32_t>{2, 4}));
    EXPECT_EQ(sources_of(lp.slots[3]), (std::vector<uint32_t>{3, 5}));
    EXPECT_NEAR(lp.slots[0].sources[0].weight, 100.0 / 130.0, 1e-12);
    EXPECT_NEAR(lp.slots[0].sources[1].weight, 30.0 / 130.0, 1e-12);
    EXPECT_EQ(p.criterion, "frequency");
    EXPECT_EQ(p.merge.group_size, 0u);  // no limit: C is ignored
    // no cap: one dominant expert may take all the others
    const auto near0 = sim_of(matrix(8, 0.1, {{0, 4}, {0, 5}, {0, 6}, {0, 7}}, 0.8), matrix(8, 0.1, {}, 0), 8);
    const Plan q     = make_merge_plan(s, m, near0, {"msmoe", "weights", 2}, 4, 0);
    check_plan(q, m, "plan");
    EXPECT_EQ(sources_of(q.layers.at(1).slots[0]), (std::vector<uint32_t>{0, 4, 5, 6, 7}));
}

// A never-routed member contributes nothing (coefficient 0 leaves the slot); a group whose
// centroid scores 0 is averaged with equal coefficients.
TEST(MergePlanner, ZeroScoresLeaveTheSlotOrFallBackToEqualWeights) {
    const MoeShape    m   = shape_of(4);
    const auto        sim = sim_of(matrix(4, 0.1, {{0, 2}, {1, 3}}, 0.9), matrix(4, 0.1, {{0, 2}, {1, 3}}, 0.9), 4);
    const ExpertStats s   = stats_of({5, 4, 0, 0}, {10, 10, 0, 10});
    const Plan        p   = make_merge_plan(s, m, sim, {"ream", "weights", 2}, 2, 0);
    check_plan(p, m, "plan");
    EXPECT_EQ(sources_of(p.layers.at(1).slots[0]), (std::vector<uint32_t>{0}));  // 2 never routed: gone
    EXPECT_EQ(sources_of(p.layers.at(1).slots[1]), (std::vector<uint32_t>{1}));  // 3 scores 0: gone
    EXPECT_EQ(p.layers.at(1).dropped, (std::vector<uint32_t>{2, 3}));
    // every REAP score 0: the centroids (2, 3 by the pruning order's ties) average their groups equally
    const ExpertStats zero = stats_of({0, 0, 0, 0}, {10, 10, 10, 10});
    const Plan        q    = make_merge_plan(zero, m, sim, {"ream", "weights", 2}, 2, 0);
    check_plan(q, m, "plan");
    EXPECT_EQ(q.layers.at(1).kept, (std::vector<uint32_t>{2, 3}));
    EXPECT_EQ(sources_of(q.layers.at(1).slots[0]), (std::vector<uint32_t>{2, 0}));
    EXPECT_EQ(sources_of(q.layers.at(1).slots[1]), (std::vector<uint32_t>{3, 1}));
    EXPECT_EQ(q.layers.at(1).slots[0].sources[1].weight, 0.5);
}

// The plan file keeps the slots and the merge record; MTP layers take the last regular layer's
// slots; missing or malformed similarities are refused.
TEST(MergePlanner, PlanJsonRoundTripMtpLayersAndBadSimilarities) {
    MoeShape m            = shape_of(8);
    m.n_layer             = 3;
    m.nextn_layers        = {2};
    const ExpertStats s   = stats_of(k_reap, k_count);
    const auto        sim = sim_of(matrix(8, 0.1, k_planted, 0.9), matrix(8, 0.1, k_planted, 0.9), 8);
    const Plan        p   = make_merge_plan(s, m, sim, {"ream", "weights", 2}, 4, 7);
    check_plan(p, m, "plan");
    EXPECT_TRUE(p.layers.at(2).copied_from_layer);
    EXPECT_EQ(p.layers.at(2).slots, p.layers.at(1).slots);
    const Plan back = Plan::from_json(nlohmann::json::parse(p.to_json().dump()), "plan.json");
    check_plan(back, m, "plan.json");
    for (int il : {1, 2}) {
        EXPECT_EQ(back.layers.at(il).slots, p.layers.at(il).slots);
        EXPECT_EQ(back.layers.at(il).kept, p.layers.at(il).kept);
    }
    EXPECT_EQ(back.merge.method, "ream");
    EXPECT_EQ(back.merge.align, "weights");
    EXPECT_EQ(back.merge.group_size, 2u);
    EXPECT_EQ(back.criterion, "reap");

    EXPECT_THROW(make_merge_plan(s, m, {}, {"ream", "weights", 2}, 4, 0), Error);  // no layer 1
    auto bad            = sim;
    bad.at(1).router[3] = 1.5;
    EXPECT_THROW(make_merge_plan(s, m, bad, {"ream", "weights", 2}, 4, 0), Error);
    bad         = sim;
    bad.at(1).n = 7;
    EXPECT_THROW(make_merge_plan(s, m, bad, {"ream", "weights", 2}, 4, 0), Error);
    EXPECT_THROW(make_merge_plan(s, m, sim, {"ream", "weights", 2}, 1, 0), Error);  // fewer than experts per token
    EXPECT_THROW(make_merge_plan(s, m, sim, {"bogus", "weights", 2}, 4, 0), UsageError);
    EXPECT_THROW(make_merge_plan(s, m, sim, {"ream", "both", 2}, 4, 0), UsageError);
}

TEST(MergePlanner, MergeSimilaritiesNameTheStatsFileWithoutThem) {
    try {
        merge_similarities(stats_of(k_reap, k_count), "s.json");
        FAIL() << "no error";
    } catch (const Error & e) {
        EXPECT_EQ(std::string(e.what()).rfind("s.json: no merge statistics: profile with --merge-stats", 0), 0u)
            << e.what();
    }
}

// With the profile's Grams, the similarities are their cosines G_ij / sqrt(G_ii G_jj).
TEST(MergePlanner, MergeSimilaritiesAreTheCosinesOfTheGrams) {
    ExpertStats    s = stats_of(k_reap, k_count);
    const uint32_t n = uint32_t(k_reap.size());
    for (auto & [il, L] : s.layers) {
        L.enable_merge_stats(16);
        for (uint32_t i = 0; i < n; i++) {
            for (uint32_t j = 0; j < n; j++) {
                L.router_gram[i * n + j] = i == j ? 4.0 * (i + 1) : 1.0;
                L.output_gram[i * n + j] = i == j ? 9.0 : (i + j == n - 1 ? -3.0 : 0.0);
            }
        }
        L.router_gram_tokens = L.output_gram_tokens = 100;
    }
    const auto sim = merge_similarities(s, "s.json");
    ASSERT_EQ(sim.size(), s.layers.size());
    const LayerSimilarity & l = sim.begin()->second;
    ASSERT_EQ(l.n, n);
    EXPECT_NEAR(l.router[0 * n + 1], 1.0 / std::sqrt(4.0 * 8.0), 1e-12);
    EXPECT_NEAR(l.router[3 * n + 3], 1.0, 1e-12);
    EXPECT_NEAR(l.output[0 * n + (n - 1)], -3.0 / 9.0, 1e-12);
    EXPECT_NEAR(l.output[1 * n + 2], 0.0, 1e-12);
}

// The request's refusals, as usage errors (exit 2) before any file is read.
TEST(MergePlanner, RequestRefusesCombinationsAsUsageErrors) {
    PruneRequest r;
    r.model        = "m.gguf";
    r.stats        = {"s.json"};
    r.keep         = 4;
    r.dry_run      = true;
    r.merge_method = "ream";
    EXPECT_NO_THROW(check_prune_request(r));
    auto refused = [&](PruneRequest q, const std::string & says) {
        try {
            check_prune_request(q);
            ADD_FAILURE() << "accepted; expected: " << says;
        } catch (const UsageError & e) {
            EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
        }
    };
    PruneRequest q = r;
    q.merge_method = "bogus";
    refused(q, "'bogus' is not a merge method");
    q             = r;
    q.merge_align = "both";
    refused(q, "'both' is not an alignment");
    q = r;
    q.stats.clear();
    q.keep.reset();
    q.plan = "p.json";
    refused(q, "a saved --plan carries its own map");
    q           = r;
    q.criterion = Criterion::frequency;
    refused(q, "do not give --criterion frequency");
    q = r;
    q.stats.push_back("t.json");
    refused(q, "--merge takes one --stats file");
    q                  = r;
    q.merge_method     = "";
    q.merge_group_size = 4;
    refused(q, "give --merge");
}

// The command line: a bad method and --merge with --plan exit 2; stats without merge statistics
// exit 1 naming the stats file.
TEST(MergePlanner, CommandLine) {
    const std::string dir   = test::tmp_dir();
    auto              bogus = test::run_reap(
                     {"prune", "-m", k_tiny, "--stats", dir + "/s.json", "--keep-ratio", "0.5", "--merge", "bogus", "--dry-run"});
    EXPECT_EQ(bogus.exit_code, 2) << bogus.err;
    auto with_plan = test::run_reap({"prune", "-m", k_tiny, "--plan", dir + "/x.json", "--merge", "ream", "--dry-run"});
    EXPECT_EQ(with_plan.exit_code, 2) << with_plan.err;
    EXPECT_NE(with_plan.err.find("--plan"), std::string::npos) << with_plan.err;
    EXPECT_NE(with_plan.err.find("see 'reap prune --help'"), std::string::npos) << with_plan.err;
    EXPECT_EQ(std::count(with_plan.err.begin(), with_plan.err.end(), '\n'), 1) << with_plan.err;
    auto group_alone = test::run_reap({"prune", "-m", k_tiny, "--stats", dir + "/s.json", "--keep-ratio", "0.5",
                                       "--merge-group-size", "4", "--dry-run"});
    EXPECT_EQ(group_alone.exit_code, 2) << group_alone.err;
    const auto help = test::run_reap({"prune", "--help"});
    EXPECT_NE(help.out.find("--merge-group-size"), std::string::npos);
    EXPECT_NE(help.out.find("default: 16"), std::string::npos) << help.out;

    const std::string stats = test::profile(k_tiny, dir + "/s.json", 2);
    auto              none  = test::run_reap(
                      {"prune", "-m", k_tiny, "--stats", stats, "--keep-ratio", "0.5", "--merge", "ream", "--dry-run"});
    EXPECT_EQ(none.exit_code, 1) << none.err;
    EXPECT_EQ(none.err.find("--help"), std::string::npos) << none.err;
    EXPECT_NE(none.err.find(stats + ": no merge statistics: profile with --merge-stats"), std::string::npos)
        << none.err;
}

}  // namespace
