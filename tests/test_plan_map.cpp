// The plan as a per-layer expert map (plan/plan.h): slots of sources with their coefficients,
// written and read as JSON, and check_plan's rules for them.
#include "core/error.h"
#include "plan/plan.h"
#include "prune/planner.h"

#include <gtest/gtest.h>

using namespace reap;

namespace {

MoeShape shape8() {
    MoeShape s;
    s.arch          = "qwen3moe";
    s.n_layer       = 2;
    s.n_expert      = 8;
    s.n_expert_used = 2;
    s.moe_layers    = {0, 1};
    return s;
}

// Keeps experts 1, 3, 5, 7; layer 0 merges each even expert into the odd one above it.
Plan merged_plan() {
    Plan p = uniform_plan(shape8(), 4);
    for (auto & [il, lp] : p.layers) {
        lp.kept    = {1, 3, 5, 7};
        lp.dropped = {0, 2, 4, 6};
        lp.set_pruned_slots();
    }
    for (uint32_t i = 0; i < 4; i++)
        p.layers.at(0).slots[i] = Slot{{{2 * i + 1, 0.75}, {2 * i, 0.25}}};
    p.merge = {"ream", "weights", 2};
    return p;
}

}  // namespace

TEST(PlanMap, PruningPlanIsOneSourceOfWeightOnePerKeptExpert) {
    const Plan p = uniform_plan(shape8(), 4);
    for (const auto & [il, lp] : p.layers) {
        ASSERT_EQ(lp.slot_count(), 4u);
        for (size_t i = 0; i < lp.slots.size(); i++) {
            ASSERT_EQ(lp.slots[i].sources.size(), 1u);
            EXPECT_EQ(lp.slots[i].sources[0].expert, lp.kept[i]);
            EXPECT_EQ(lp.slots[i].sources[0].weight, 1.0);
        }
    }
    EXPECT_FALSE(p.computed());
    EXPECT_EQ(p.expert_count(), 4u);
    const nlohmann::json j = p.to_json();
    EXPECT_EQ(j["layers"]["0"]["slots"][2]["sources"][0]["expert"], p.layers.at(0).kept[2]);
    EXPECT_FALSE(j.contains("merge"));
}

TEST(PlanMap, MergedPlanRoundTripsThroughJson) {
    const Plan p = merged_plan();
    check_plan(p, shape8(), "merged");
    EXPECT_TRUE(p.computed());
    const Plan q = Plan::from_json(nlohmann::json::parse(p.to_json().dump()), "merged.json");
    EXPECT_EQ(q.merge.method, "ream");
    EXPECT_EQ(q.merge.align, "weights");
    EXPECT_EQ(q.merge.group_size, 2u);
    for (const auto & [il, lp] : p.layers)
        EXPECT_EQ(q.layers.at(il).slots, lp.slots) << "layer " << il;
    check_plan(q, shape8(), "merged.json");
}

TEST(PlanMap, PlanWithoutSlotsFromAnOlderReapCopiesItsKeptExperts) {
    nlohmann::json j = uniform_plan(shape8(), 4).to_json();
    for (auto & [k, l] : j["layers"].items())
        l.erase("slots");
    const Plan p = Plan::from_json(j, "old.json");
    for (const auto & [il, lp] : p.layers) {
        ASSERT_EQ(lp.slot_count(), 4u);
        EXPECT_FALSE(lp.computed());
        EXPECT_EQ(lp.slots[3].sources[0].expert, lp.kept[3]);
    }
    check_plan(p, shape8(), "old.json");
}

TEST(PlanMap, CheckPlanRefusesABrokenMap) {
    const MoeShape s        = shape8();
    const auto     refused  = [&](Plan p, const char * why) { EXPECT_THROW(check_plan(p, s, "p"), Error) << why; };
    Plan           no_merge = merged_plan();
    no_merge.merge          = {};
    refused(no_merge, "several sources in a plan that merges nothing");
    Plan sum                                    = merged_plan();
    sum.layers.at(0).slots[0].sources[1].weight = 0.5;
    refused(sum, "weights summing to 1.25");
    Plan twice                                    = merged_plan();
    twice.layers.at(0).slots[1].sources[1].expert = 0;  // expert 0 already in slot 0
    refused(twice, "one expert in two slots");
    Plan centroid = merged_plan();
    std::swap(centroid.layers.at(0).slots[0].sources[0], centroid.layers.at(0).slots[0].sources[1]);
    refused(centroid, "a slot whose first source is not the kept expert");
    Plan range = merged_plan();
    range.layers.at(1).slots[0].sources.push_back({8, 0.0});
    refused(range, "an expert id beyond the layer");
    Plan negative                          = merged_plan();
    negative.layers.at(0).slots[2].sources = {{5, 1.5}, {4, -0.5}};
    refused(negative, "a negative weight");
    Plan count = merged_plan();
    count.layers.at(1).slots.pop_back();
    refused(count, "fewer slots than kept experts");
    Plan uneven              = merged_plan();
    uneven.layers.at(1).kept = {1, 3, 5, 6, 7};
    uneven.layers.at(1).set_pruned_slots();
    refused(uneven, "layers with different expert counts");
    EXPECT_THROW(uneven.expert_count(), Error);
}

TEST(PlanMap, HostilePlanJsonIsRefusedWithAMessage) {
    const nlohmann::json good = merged_plan().to_json();
    for (const char * patch :
         {R"({"merge": {"method": 3}})", R"({"merge": {"method": ""}})",
          R"({"layers": {"0": {"kept": [1, 3, 5, 7], "slots": [{"sources": []}]}}})",
          R"({"layers": {"0": {"kept": [1, 3, 5, 7], "slots": [{"sources": [{"expert": 1}]}]}}})",
          R"({"layers": {"0": {"kept": [1, 3, 5, 7], "slots": [{"sources": [{"expert": -1, "weight": 1}]}]}}})",
          R"({"layers": {"0": {"kept": [1, 3, 5, 7], "slots": {"a": 1}}}})",
          R"({"layers": {"0": {"kept": [1, 3, 5]}}})"}) {
        nlohmann::json j = good;
        j.merge_patch(nlohmann::json::parse(patch));
        EXPECT_THROW(Plan::from_json(j, "hostile.json"), Error) << patch;
    }
}
