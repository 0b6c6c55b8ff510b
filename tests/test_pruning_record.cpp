// The record a pruned output keeps of its plan (issue 32, item 5): each format writes it and
// reads it back (gguf/gguf_pruning_record, hf/hf_pruning_record), model/open_model's
// read_pruning_record picks the format, and plan/pruning_record's same_map says whether an
// output is a plan's, by its whole expert map (the sweep's --resume). A pruning plan's keys stay
// those of older reaps; merged plans' records round-trip; damaged records are errors, not crashes.
#include "core/error.h"
#include "core/fs_util.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_pruner.h"
#include "gguf/gguf_pruning_record.h"
#include "gguf/moe_layout.h"
#include "gguf/router_fingerprint.h"
#include "hf/hf_checkpoint.h"
#include "hf/hf_layout.h"
#include "hf/hf_pruner.h"
#include "hf/hf_pruning_record.h"
#include "model/open_model.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth_hf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

using namespace reap;
using nlohmann::json;

namespace {

synth::Options small(const std::string & arch) {
    synth::Options o;
    o.arch    = arch;
    o.seed    = 7;
    o.n_layer = test::fewest_layers(arch);
    return o;
}

// A pruning plan keeping `kept` experts per MoE layer, shifted by `shift` from layer to layer.
Plan pruning_plan(const MoeShape & s, uint32_t kept, uint32_t shift, const std::string & model) {
    Plan p;
    p.criterion  = "reap";
    p.n_expert   = s.n_expert;
    p.keep_ratio = double(kept) / s.n_expert;
    p.model      = model;
    p.stats      = "/somewhere/stats.json";
    for (int il : s.all_moe_layers()) {
        LayerPlan lp;
        for (uint32_t e = 0; e < s.n_expert; e++)
            ((e + uint32_t(il) * shift) % s.n_expert < kept ? lp.kept : lp.dropped).push_back(e);
        lp.set_pruned_slots();
        p.layers[il] = lp;
    }
    return p;
}

// A merged plan by hand (8 experts, layers 1 and 3, 4 slots): the records do not depend on the
// merged tensors being written.
Plan merged_plan() {
    Plan p;
    p.criterion  = "ream";
    p.n_expert   = 8;
    p.keep_ratio = 0.5;
    p.model      = "base.gguf";
    p.merge      = MergeRecord{"ream", "weights", 3};
    for (int il : {1, 3}) {
        LayerPlan lp;
        lp.kept      = {0, 2, 5, 6};
        lp.dropped   = {1, 3, 4, 7};
        lp.slots     = {Slot{{{0, 0.6}, {3, 0.3}, {7, 0.1}}}, Slot{{{2, 1.0}}}, Slot{{{5, 0.55}, {1, 0.45}}},
                        Slot{{{6, 0.7}, {4, 0.3}}}};
        p.layers[il] = lp;
    }
    return p;
}

std::vector<std::string> prune_keys(const gguf_context * ctx) {
    std::vector<std::string> keys;
    for (int64_t i = 0; i < gguf_get_n_kv(ctx); i++) {
        const std::string k = gguf_get_key(ctx, i);
        if (k.rfind("reap.prune.", 0) == 0) keys.push_back(k);
    }
    return keys;
}

using CtxPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;

CtxPtr merged_ctx() {
    CtxPtr ctx(gguf_init_empty(), &gguf_free);
    write_pruning_record(ctx.get(), merged_plan(), "/models/base.gguf", 8);
    return ctx;
}

void set_u32s(gguf_context * ctx, const std::string & key, const std::vector<uint32_t> & v) {
    gguf_set_arr_data(ctx, key.c_str(), GGUF_TYPE_UINT32, v.data(), v.size());
}

// `damage` applied to a merged record makes reading it a reap::Error naming the origin and saying
// `why`.
void expect_refused(const std::function<void(gguf_context *)> & damage, const std::string & why) {
    CtxPtr ctx = merged_ctx();
    damage(ctx.get());
    try {
        read_pruning_record(ctx.get(), "damaged.gguf");
        ADD_FAILURE() << "accepted, expected: " << why;
    } catch (const Error & e) {
        const std::string m = e.what();
        EXPECT_EQ(m.rfind("damaged.gguf: ", 0), 0u) << m;
        EXPECT_NE(m.find(why), std::string::npos) << m;
    }
}

json merged_json() { return json::parse(hf_pruning_record_text(merged_plan(), "/models/base", 8, {})); }

void expect_json_refused(const std::function<void(json &)> & damage, const std::string & why) {
    json j = merged_json();
    damage(j);
    try {
        hf_pruning_record_from_json(j, "out/reap_prune.json");
        ADD_FAILURE() << "accepted, expected: " << why << ": " << j.dump();
    } catch (const Error & e) {
        const std::string m = e.what();
        EXPECT_EQ(m.rfind("out/reap_prune.json: ", 0), 0u) << m;
        EXPECT_NE(m.find(why), std::string::npos) << m;
    }
}

}  // namespace

// prune, read back: the plan's map; another plan's (other experts, another criterion, another
// source) is not.
TEST(PruningRecord, GgufRoundTripThroughThePruner) {
    const std::string dir = test::tmp_dir(), model = test::synth_model(small("qwen3moe"));
    const GgufFile    in     = GgufFile::open(model);
    const MoeLayout   layout = analyze_moe(in);
    const MoeShape    shape  = model_shape(in, layout);
    const Plan        plan   = pruning_plan(shape, shape.n_expert / 2, 1, base_name(model));
    prune_model(in, layout, {{plan, dir + "/half.gguf", 0}}, false);

    const auto rec = read_pruning_record(dir + "/half.gguf");
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->source, base_name(model));
    EXPECT_EQ(rec->criterion, "reap");
    EXPECT_EQ(rec->stats, "stats.json");
    EXPECT_EQ(rec->n_expert_original, shape.n_expert);
    EXPECT_TRUE(rec->merge.empty());
    EXPECT_TRUE(same_map(*rec, plan));

    EXPECT_FALSE(same_map(*rec, pruning_plan(shape, shape.n_expert / 2, 3, base_name(model))));
    Plan other_criterion      = plan;
    other_criterion.criterion = "frequency";
    EXPECT_FALSE(same_map(*rec, other_criterion));
    Plan other_model  = plan;
    other_model.model = "other.gguf";
    EXPECT_FALSE(same_map(*rec, other_model));

    // The unpruned model records nothing.
    EXPECT_FALSE(read_pruning_record(model).has_value());
}

// A pruning plan writes the keys older reaps wrote, in their order and types, and nothing else:
// its files stay byte-identical (the metadata is the only part the record touches).
TEST(PruningRecord, PruningPlanKeysAreTheOldOnes) {
    MoeShape s;
    s.n_expert      = 8;
    s.moe_layers    = {0, 1};
    const Plan plan = pruning_plan(s, 4, 1, "base.gguf");
    CtxPtr     ctx(gguf_init_empty(), &gguf_free);
    gguf_set_val_str(ctx.get(), "general.name", "x");
    write_pruning_record(ctx.get(), plan, "/models/base.gguf", 8);
    EXPECT_EQ(prune_keys(ctx.get()),
              (std::vector<std::string>{"reap.prune.criterion", "reap.prune.keep_ratio", "reap.prune.n_expert_original",
                                        "reap.prune.source", "reap.prune.stats", "reap.prune.layer.0.kept",
                                        "reap.prune.layer.1.kept"}));
    EXPECT_EQ(gguf_get_n_kv(ctx.get()), 8);
    EXPECT_STREQ(gguf_get_val_str(ctx.get(), gguf_find_key(ctx.get(), "reap.prune.source")), "base.gguf");
    EXPECT_EQ(gguf_get_kv_type(ctx.get(), gguf_find_key(ctx.get(), "reap.prune.keep_ratio")), GGUF_TYPE_FLOAT32);
    EXPECT_EQ(gguf_get_val_f32(ctx.get(), gguf_find_key(ctx.get(), "reap.prune.keep_ratio")), 0.5f);
    const int64_t k = gguf_find_key(ctx.get(), "reap.prune.layer.1.kept");
    EXPECT_EQ(gguf_get_arr_type(ctx.get(), k), GGUF_TYPE_UINT32);
    const auto * ids = static_cast<const uint32_t *>(gguf_get_arr_data(ctx.get(), k));
    EXPECT_EQ(std::vector<uint32_t>(ids, ids + gguf_get_arr_n(ctx.get(), k)), plan.layers.at(1).kept);

    // Re-pruning a merged model with a pruning plan: the input's merge record goes.
    CtxPtr again = merged_ctx();
    write_pruning_record(again.get(), plan, "/models/base.gguf", 8);
    EXPECT_EQ(prune_keys(again.get()), prune_keys(ctx.get()));
}

// A merged plan's record, written into a context and read back, in memory and through a file.
TEST(PruningRecord, GgufMergedRecordRoundTrips) {
    const Plan plan = merged_plan();
    CtxPtr     ctx  = merged_ctx();
    const auto rec  = read_pruning_record(ctx.get(), "mem");
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->merge.method, "ream");
    EXPECT_EQ(rec->merge.align, "weights");
    EXPECT_EQ(rec->merge.group_size, 3u);
    ASSERT_EQ(rec->slots.size(), 2u);
    EXPECT_EQ(rec->slots.at(3).at(0).sources.size(), 3u);
    EXPECT_TRUE(same_map(*rec, plan));

    // Weights compare within the f32 the file stores, no further.
    Plan near = plan;
    near.layers[1].slots[0].sources[0].weight += 1e-8;
    EXPECT_TRUE(same_map(*rec, near));
    Plan other                                 = plan;
    other.layers[3].slots[2].sources[0].weight = 0.5;
    other.layers[3].slots[2].sources[1].weight = 0.5;
    EXPECT_FALSE(same_map(*rec, other)) << "a merged point with other weights is another model";
    Plan other_sources = plan;
    std::swap(other_sources.layers[1].slots[3].sources[1].expert, other_sources.layers[1].slots[0].sources[2].expert);
    EXPECT_FALSE(same_map(*rec, other_sources));
    Plan other_align        = plan;
    other_align.merge.align = "none";
    EXPECT_FALSE(same_map(*rec, other_align));
    Plan pruned  = plan;
    pruned.merge = MergeRecord{};
    for (auto & [il, lp] : pruned.layers)
        lp.set_pruned_slots();
    EXPECT_FALSE(same_map(*rec, pruned)) << "the pruning plan of the same centroids";

    const std::string path = test::tmp_dir() + "/record.gguf";
    ASSERT_TRUE(gguf_write_to_file(ctx.get(), path.c_str(), false));
    const auto from_file = read_pruning_record(path);
    ASSERT_TRUE(from_file.has_value());
    EXPECT_TRUE(*from_file == *rec);
    EXPECT_TRUE(same_map(*from_file, plan));
}

TEST(PruningRecord, GgufDamagedRecordsAreErrors) {
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.1.slot_sizes", {3, 1, 2, 3});
        },
        "the slot sizes add up to 9, with 8 sources and 8 weights");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.1.slot_sizes", {3, 1, 2});
        },
        "3 slot sizes for 4 kept experts");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.3.slot_sizes", {3, 0, 3, 2});
        },
        "a slot of no source");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.3.sources", {0, 3, 7, 2, 5, 1, 6});
        },
        "add up to 8, with 7 sources and 8 weights");
    expect_refused(
        [](gguf_context * c) {
            const float w[] = {0.6f, 0.3f, 0.1f, 1.0f, 0.55f, 0.45f, 0.7f};
            gguf_set_arr_data(c, "reap.prune.layer.1.weights", GGUF_TYPE_FLOAT32, w, 7);
        },
        "add up to 8, with 8 sources and 7 weights");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.3.sources", {0, 3, 7, 2, 5, 9, 6, 4});
        },
        "source expert 9 is not below 8");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.1.kept", {0, 2, 5, 8});
        },
        "kept expert 8 is not below 8");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.1.kept", {0, 5, 2, 6});
        },
        "kept expert 2 is not below 8 or not ascending");
    expect_refused(
        [](gguf_context * c) {
            set_u32s(c, "reap.prune.layer.1.sources", {3, 0, 7, 2, 5, 1, 6, 4});
        },
        "slot 0 starts with expert 3, not its kept expert 0");
    expect_refused(
        [](gguf_context * c) {
            const float w[] = {0.6f, NAN, 0.1f, 1.0f, 0.55f, 0.45f, 0.7f, 0.3f};
            gguf_set_arr_data(c, "reap.prune.layer.1.weights", GGUF_TYPE_FLOAT32, w, 8);
        },
        "the weight of source expert 3 is not finite");
    expect_refused(
        [](gguf_context * c) {
            const char * s[] = {"0", "2", "5", "6"};
            gguf_set_arr_str(c, "reap.prune.layer.1.kept", s, 4);
        },
        "is an array of str, expected u32");
    expect_refused([](gguf_context * c) { gguf_set_val_str(c, "reap.prune.n_expert_original", "8"); },
                   "is a str, expected a u32");
    expect_refused([](gguf_context * c) { gguf_remove_key(c, "reap.prune.criterion"); },
                   "without its key 'reap.prune.criterion'");
    expect_refused([](gguf_context * c) { gguf_remove_key(c, "reap.prune.layer.3.weights"); },
                   "lacks its slot_sizes, sources or weights");
    expect_refused([](gguf_context * c) { gguf_remove_key(c, "reap.prune.merge.method"); },
                   "but no reap.prune.merge.method");
    expect_refused([](gguf_context * c) { set_u32s(c, "reap.prune.layer.01.kept", {0}); },
                   "is not reap.prune.layer.<layer index>.<field>");
    expect_refused([](gguf_context * c) { set_u32s(c, "reap.prune.layer.1.slots", {0}); }, "names no field of a layer");
    expect_refused(
        [](gguf_context * c) {
            for (int il : {1, 3})
                gguf_remove_key(c, ("reap.prune.layer." + std::to_string(il) + ".kept").c_str());
        },
        "has no kept experts");
}

// prune an HF folder, read its reap_prune.json back through the one reader of either format.
TEST(PruningRecord, HfRoundTripThroughThePruner) {
    const std::string dir = test::tmp_dir(), model = test::synth_model(small("qwen3moe"));
    const std::string hf = dir + "/hf";
    synth::write_hf(model, hf, {synth::HfExperts::per_expert, 0});
    const HfCheckpoint c      = HfCheckpoint::open(hf);
    const HfLayout     layout = analyze_hf(c);
    const Plan         plan   = pruning_plan(layout.shape, layout.shape.n_expert / 2, 1, base_name(hf));
    prune_hf(c, layout, {{plan, dir + "/out-hf", 0}}, false);

    const auto rec = read_pruning_record(dir + "/out-hf");
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->source, "hf");
    EXPECT_EQ(rec->stats, "stats.json");
    EXPECT_EQ(rec->n_expert_original, layout.shape.n_expert);
    EXPECT_TRUE(same_map(*rec, plan));
    EXPECT_FALSE(same_map(*rec, pruning_plan(layout.shape, layout.shape.n_expert / 2, 3, base_name(hf))));
    const json j = json::parse(test::read_text(dir + "/out-hf/reap_prune.json"));
    EXPECT_FALSE(j.contains("merge") || j.contains("slots")) << "a pruning plan's record is as before";
    EXPECT_FALSE(read_pruning_record(hf).has_value());
}

TEST(PruningRecord, HfMergedRecordRoundTrips) {
    const Plan plan = merged_plan();
    const json j    = merged_json();
    ASSERT_TRUE(j.contains("merge") && j.contains("slots"));
    EXPECT_EQ(j["slots"]["3"][0]["sources"][2], json({{"expert", 7}, {"weight", 0.1}}));
    const PruningRecord rec = hf_pruning_record_from_json(j, "mem");
    EXPECT_EQ(rec.source, "base");
    EXPECT_EQ(rec.merge.group_size, 3u);
    Plan named  = plan;
    named.model = "base";
    EXPECT_TRUE(same_map(rec, named));
    Plan other                                 = named;
    other.layers[1].slots[0].sources[1].weight = 0.2;
    other.layers[1].slots[0].sources[2].weight = 0.2;
    EXPECT_FALSE(same_map(rec, other));
}

TEST(PruningRecord, HfDamagedRecordsAreErrors) {
    expect_json_refused([](json & j) { j["slots"]["1"].erase(3); }, "layer 1 has 3 slots for 4 kept experts");
    expect_json_refused([](json & j) { j["slots"]["1"][1]["sources"] = json::array(); },
                        "a slot's sources must be a non-empty array");
    expect_json_refused([](json & j) { j["slots"]["3"][2]["sources"][1]["expert"] = 8; },
                        "source expert 8 is not below n_expert_original 8");
    expect_json_refused([](json & j) { j["slots"]["3"][2]["sources"][1]["expert"] = -1; },
                        "source expert must be an integer");
    expect_json_refused([](json & j) { j["slots"]["3"][2]["sources"][1]["weight"] = "0.4"; },
                        "a source's weight must be a finite number");
    expect_json_refused([](json & j) { j["slots"]["3"][0]["sources"][0]["expert"] = 3; },
                        "slot 0 starts with expert 3, not its kept expert 0");
    expect_json_refused([](json & j) { j["kept"]["1"] = {0, 2, 5, 9}; }, "kept expert 9 is not below");
    expect_json_refused([](json & j) { j["kept"]["1"] = {0, 5, 2, 6}; }, "kept ids are not ascending");
    expect_json_refused([](json & j) { j["kept"]["1"] = "0,2,5,6"; }, "kept must be an array");
    expect_json_refused(
        [](json & j) {
            j["kept"]["x"]  = j["kept"]["1"];
            j["slots"]["x"] = j["slots"]["1"];
        },
        "layer key \"x\" is not a layer index");
    expect_json_refused([](json & j) { j.erase("merge"); }, "\"slots\" without \"merge\"");
    expect_json_refused([](json & j) { j.erase("slots"); }, "\"merge\" without \"slots\"");
    expect_json_refused([](json & j) { j["slots"].erase("3"); }, "slots must be an object with the layers of kept");
    expect_json_refused([](json & j) { j["merge"]["method"] = ""; }, "merge method is empty");
    expect_json_refused([](json & j) { j["n_expert_original"] = 1.5; }, "n_expert_original must be an integer");
    expect_json_refused([](json & j) { j["plan"].erase("criterion"); }, "no \"criterion\"");
    expect_json_refused([](json & j) { j.erase("source"); }, "no \"source\"");
    expect_json_refused([](json & j) { j = json::array(); }, "a record is a JSON object");

    // Through the folder reader: a damaged file is an error naming it.
    const std::string dir = test::tmp_dir();
    std::filesystem::create_directories(dir + "/m");
    test::write_bytes(dir + "/m/config.json", "{}", 2);
    test::write_bytes(dir + "/m/reap_prune.json", "{\"kept\": [", 10);
    EXPECT_THROW(read_pruning_record(dir + "/m"), Error);
}
