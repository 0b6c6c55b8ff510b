// The statistics themselves: derived criteria, merging, and the stats file format.
#include "core/error.h"
#include "stats/criteria.h"
#include "stats/expert_stats.h"
#include "support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

LayerStats sample_layer() {
    LayerStats L(4);
    L.total_tokens = 3;
    // token 1 -> experts 0 (g .75) and 1 (g .25); token 2 -> 0 (.5), 2 (.5); token 3 -> 0 (1.0), 1 (0)
    L.add(0, 0.75, 0.6, 2.0, 0.75 * 2.0);
    L.add(1, 0.25, 0.2, 4.0, 0.25 * 4.0);
    L.add(0, 0.50, 0.4, 1.0, 0.50 * 1.0);
    L.add(2, 0.50, 0.4, 3.0, 0.50 * 3.0);
    L.add(0, 1.00, 0.9, 2.0, 1.00 * 2.0);
    L.add(1, 0.00, 0.1, 8.0, 0.0);
    // largest |f_i| of each routed output above, and where: expert 0 peaks at 1.5 (channel 3) in
    // its third token, expert 1 at 6.0 (channel 1) in its second, expert 2 at 2.5 (channel 0)
    L.add_output_max(0, 1.0, 2);
    L.add_output_max(1, 3.0, 0);
    L.add_output_max(0, 0.5, 1);
    L.add_output_max(2, 2.5, 0);
    L.add_output_max(0, 1.5, 3);
    L.add_output_max(1, 6.0, 1);
    return L;
}

TEST(LayerStats, DerivedCriteriaMatchHandComputedValues) {
    const LayerStats L = sample_layer();
    EXPECT_EQ(L.count, (std::vector<uint64_t>{3, 2, 1, 0}));
    const auto f = L.activation_frequency();
    EXPECT_DOUBLE_EQ(f[0], 1.0);
    EXPECT_DOUBLE_EQ(f[1], 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(f[3], 0.0);
    EXPECT_DOUBLE_EQ(L.avg_gate_weight()[0], (0.75 + 0.5 + 1.0) / 3);
    EXPECT_DOUBLE_EQ(L.avg_raw_gate_weight()[1], (0.2 + 0.1) / 2);
    EXPECT_DOUBLE_EQ(L.ean_mean()[1], (4.0 + 8.0) / 2);
    EXPECT_DOUBLE_EQ(L.reap()[0], (1.5 + 0.5 + 2.0) / 3);
    EXPECT_DOUBLE_EQ(L.reap()[1], (1.0 + 0.0) / 2);
    EXPECT_DOUBLE_EQ(L.reap()[3], 0.0);  // never routed
    EXPECT_EQ(L.never_activated(), 1u);
    EXPECT_DOUBLE_EQ(L.reap_max[0], 2.0);
    // sample variance of {1.5, 0.5, 2.0}: mean 4/3
    const double m = 4.0 / 3.0;
    EXPECT_NEAR(L.reap_variance()[0], ((1.5 - m) * (1.5 - m) + (0.5 - m) * (0.5 - m) + (2.0 - m) * (2.0 - m)) / 2,
                1e-12);
}

// The reference implementation's sums (weighted_ean_sum, ean_sum) over all tokens of the layer,
// and the largest output element (max_activations), by hand from sample_layer's tokens.
TEST(LayerStats, ReferenceImplementationCriteriaMatchHandComputedValues) {
    const LayerStats L = sample_layer();
    // reap-sum: sum of g ||f|| over the routed tokens / 3 tokens
    EXPECT_EQ(expert_scores(L, Criterion::reap_sum, 0, 0),
              (std::vector<double>{(1.5 + 0.5 + 2.0) / 3, (1.0 + 0.0) / 3, 1.5 / 3, 0.0}));
    // ean-sum: sum of ||f|| over the routed tokens / 3 tokens
    EXPECT_EQ(expert_scores(L, Criterion::ean_sum, 0, 0),
              (std::vector<double>{(2.0 + 1.0 + 2.0) / 3, (4.0 + 8.0) / 3, 3.0 / 3, 0.0}));
    // max-activation: the largest |f_i| over the routed tokens, and the channel it came from
    EXPECT_EQ(expert_scores(L, Criterion::max_activation, 0, 0), (std::vector<double>{1.5, 6.0, 2.5, 0.0}));
    EXPECT_EQ(L.out_max_channel, (std::vector<uint32_t>{3, 1, 0, 0}));
    // They rank differently from the means: expert 2 (one token, REAP 1.5) is REAP's best but
    // reap-sum's third, because it served one token of three.
    EXPECT_GT(L.reap()[2], L.reap()[0]);
    EXPECT_LT(L.reap_per_token()[2], L.reap_per_token()[0]);
}

// The maxima merge as maxima (with their channels), survive the file, and a file without them
// (an older reap) refuses max-activation only.
TEST(LayerStats, OutputMaximaMergeAsMaximaAndAreKnownAbsent) {
    LayerStats a(3), b(3), whole(3);
    // expert, |f|max, channel per token
    const double data[][3] = {{0, 2.0, 5}, {1, 1.0, 2}, {0, 7.0, 1}, {2, 0.5, 4}, {1, 0.25, 0}};
    for (int i = 0; i < 5; i++) {
        const auto & d = data[i];
        for (LayerStats * s : {i < 2 ? &a : &b, &whole}) {
            s->add(uint32_t(d[0]), 0.5, 0.5, 1.0, 0.5);
            s->add_output_max(uint32_t(d[0]), d[1], uint32_t(d[2]));
        }
    }
    a.total_tokens = 1, b.total_tokens = 2, whole.total_tokens = 3;
    a.merge(b);
    EXPECT_EQ(a.out_max, (std::vector<double>{7.0, 1.0, 0.5}));
    EXPECT_EQ(a.out_max_channel, (std::vector<uint32_t>{1, 2, 4}));
    EXPECT_EQ(a.out_max, whole.out_max);
    EXPECT_EQ(a.out_max_channel, whole.out_max_channel);

    ExpertStats s;
    s.layers.emplace(0, whole);
    const ExpertStats r = ExpertStats::from_json(s.to_json(), "max.json");
    EXPECT_EQ(r.layers.at(0).out_max, whole.out_max);
    EXPECT_EQ(r.layers.at(0).out_max_channel, whole.out_max_channel);

    const json old       = {{"0", {{"total_tokens", 3}, {"activation_counts", {2, 2, 1}}, {"reap", {0.5, 0.5, 0.5}}}}};
    LayerStats old_layer = ExpertStats::from_json(old, "old.json").layers.at(0);
    EXPECT_FALSE(old_layer.has_out_max());
    EXPECT_THROW(expert_scores(old_layer, Criterion::max_activation, 0, 0), Error);
    for (Criterion c : {Criterion::reap, Criterion::reap_sum, Criterion::ean_sum})
        EXPECT_NO_THROW(expert_scores(old_layer, c, 0, 0)) << criterion_name(c);
    LayerStats mixed = whole;
    mixed.merge(old_layer);  // the old run's maxima are unknown: so is the maximum of both
    EXPECT_FALSE(mixed.has_out_max());

    json bad                   = old;
    bad["0"]["max_activation"] = {1.0, 2.0, 3.0};  // without its channels
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
    bad["0"]["max_activation_channel"] = {0, 1, -1};
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
    bad["0"]["max_activation_channel"] = {0, 1, 2};
    bad["0"]["max_activation"]         = {1.0, -2.0, 3.0};
    EXPECT_THROW(ExpertStats::from_json(bad, "bad.json"), Error);
    bad["0"]["max_activation"] = {1.0, 2.0, 3.0};
    EXPECT_NO_THROW(ExpertStats::from_json(bad, "bad.json"));
}

TEST(LayerStats, MergeOfHalvesEqualsTheWhole) {
    LayerStats   a(4), b(4), whole(4);
    const double data[][4] = {{0, .7, .6, 2}, {1, .3, .2, 1}, {2, .9, .8, 5}, {0, .1, .1, 7}, {3, .5, .5, 1}};
    for (int i = 0; i < 5; i++) {
        const auto & d = data[i];
        (i < 2 ? a : b).add(uint32_t(d[0]), d[1], d[2], d[3], d[1] * d[3]);
        whole.add(uint32_t(d[0]), d[1], d[2], d[3], d[1] * d[3]);
    }
    a.total_tokens     = 1;
    b.total_tokens     = 2;
    whole.total_tokens = 3;
    a.merge(b);
    EXPECT_EQ(a.count, whole.count);
    EXPECT_EQ(a.total_tokens, whole.total_tokens);
    for (size_t e = 0; e < 4; e++) {
        EXPECT_DOUBLE_EQ(a.reap_sum[e], whole.reap_sum[e]);
        EXPECT_DOUBLE_EQ(a.reap_max[e], whole.reap_max[e]);
        EXPECT_DOUBLE_EQ(a.gate_sum[e], whole.gate_sum[e]);
    }
}

TEST(ExpertStats, FileRoundTripsAndKeepsThePrototypeLayout) {
    ExpertStats s;
    s.layers.emplace(3, sample_layer());
    s.layers.emplace(5, sample_layer());
    s.meta.model           = "m.gguf";
    s.meta.n_expert        = 4;
    s.meta.unknown         = {{"other_tool", {{"kept", true}}}};
    const std::string path = test::tmp_dir() + "/stats.json";
    s.save(path);

    json j;
    std::ifstream(path) >> j;
    for (const char * k : {"total_tokens", "activation_counts", "activation_frequency", "avg_gate_weight", "ean_mean",
                           "reap", "never_activated"}) {
        EXPECT_TRUE(j["3"].contains(k)) << k;
    }
    EXPECT_EQ(j["3"]["never_activated"], 1);
    EXPECT_EQ(j["3"]["activation_counts"], json({3, 2, 1, 0}));
    EXPECT_EQ(j["_meta"]["model"], "m.gguf");

    const ExpertStats r = ExpertStats::load(path);
    ASSERT_EQ(r.layers.size(), 2u);
    EXPECT_EQ(r.layers.at(5).count, s.layers.at(5).count);
    for (size_t e = 0; e < 4; e++) {
        EXPECT_DOUBLE_EQ(r.layers.at(3).reap_sum[e], s.layers.at(3).reap_sum[e]);
        EXPECT_DOUBLE_EQ(r.layers.at(3).reap_sq_sum[e], s.layers.at(3).reap_sq_sum[e]);
    }
    EXPECT_EQ(r.meta.n_expert, 4u);
    EXPECT_EQ(r.meta.model, "m.gguf");
    EXPECT_EQ(j["_meta"]["other_tool"]["kept"], true);  // keys of other tools survive a round trip
    EXPECT_EQ(r.meta.unknown["other_tool"]["kept"], true);
}

TEST(ExpertStats, ReadsAPrototypeFileWithoutSums) {
    // The earlier prototype wrote only the means; the sums are rebuilt from them.
    const json        proto = {{"0",
                                {{"total_tokens", 10},
                                 {"activation_counts", {4, 6, 0}},
                                 {"activation_frequency", {0.4, 0.6, 0.0}},
                                 {"avg_gate_weight", {0.5, 0.25, 0.0}},
                                 {"ean_mean", {2.0, 1.0, 0.0}},
                                 {"reap", {1.0, 0.25, 0.0}},
                                 {"never_activated", 1}}},
                               {"model_info", {{"note", "non-numeric keys are ignored"}}}};
    const ExpertStats s     = ExpertStats::from_json(proto, "proto.json");
    ASSERT_EQ(s.layers.size(), 1u);
    const auto & L = s.layers.at(0);
    EXPECT_DOUBLE_EQ(L.reap_sum[0], 4.0);
    EXPECT_DOUBLE_EQ(L.gate_sum[1], 1.5);
    EXPECT_DOUBLE_EQ(L.reap()[1], 0.25);
    EXPECT_EQ(L.never_activated(), 1u);
}

TEST(ExpertStats, RejectsMalformedFiles) {
    auto bad = [](const json & j) { EXPECT_THROW(ExpertStats::from_json(j, "x.json"), Error) << j.dump(); };
    bad(json::array());
    bad(json::object());                                                                     // no layers
    bad({{"0", 5}});                                                                         // layer not an object
    bad({{"0", {{"total_tokens", 1}}}});                                                     // no counts
    bad({{"0", {{"total_tokens", 1}, {"activation_counts", {1, "x"}}, {"reap", {0, 0}}}}});  // non-number
    bad({{"0", {{"total_tokens", 1}, {"activation_counts", {1, 2}}, {"reap", {0}}}}});       // length mismatch
    bad({{"0", {{"total_tokens", -1}, {"activation_counts", {1, 2}}, {"reap", {0, 0}}}}});   // negative
    bad({{"0", {{"total_tokens", 1}, {"activation_counts", {-1, 2}}, {"reap", {0, 0}}}}});

    const std::string dir = test::tmp_dir();
    test::write_bytes(dir + "/trunc.json", "{\"0\": {\"total_tok", 17);
    EXPECT_THROW(ExpertStats::load(dir + "/trunc.json"), Error);
    EXPECT_THROW(ExpertStats::load(dir + "/missing.json"), Error);
}

TEST(ExpertStats, MergeRefusesADifferentModel) {
    ExpertStats a, b, c;
    a.layers.emplace(0, sample_layer());
    b.layers.emplace(1, sample_layer());
    c.layers.emplace(0, LayerStats(8));
    EXPECT_THROW(a.merge(b, "b.json"), Error);
    EXPECT_THROW(a.merge(c, "c.json"), Error);
    ExpertStats d;
    d.layers.emplace(0, sample_layer());
    a.merge(d, "d.json");
    EXPECT_EQ(a.layers.at(0).count[0], 6u);
}

TEST(StatsMeta, ParsesStrictlyAndNamesTheFile) {
    const json      good = {{"architecture", "qwen3moe"},
                            {"n_expert", 16},
                            {"n_expert_groups", 4},
                            {"moe_layers", {0, 1}},
                            {"progress", {{"samples_done", 3}, {"tokens_done", 9}, {"complete", false}}},
                            {"other", {1, 2}}};
    const StatsMeta m    = StatsMeta::parse(good, "s.json");
    EXPECT_EQ(m.architecture, "qwen3moe");
    EXPECT_EQ(m.n_expert_groups, 4u);
    EXPECT_FALSE(m.complete());
    EXPECT_EQ(m.to_json(), good);  // unknown keys written back as read
    auto error = [](const json & j) {
        try {
            StatsMeta::parse(j, "s.json");
        } catch (const Error & e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_EQ(error(json::array()), "s.json: _meta must be an object (it is array)");
    EXPECT_EQ(error({{"n_expert", -1}}).rfind("s.json: _meta.n_expert must be", 0), 0u);
    EXPECT_EQ(error({{"n_expert", 4294967312ull}}).rfind("s.json: _meta.n_expert must be", 0), 0u);
    EXPECT_EQ(error({{"n_expert", 7.5}}).rfind("s.json: _meta.n_expert must be", 0), 0u);
    EXPECT_EQ(error({{"architecture", 3}}), "s.json: _meta.architecture must be a string");
    EXPECT_EQ(error({{"progress", {{"samples_done", 1}}}}).rfind("s.json: _meta.progress must be", 0), 0u);
    EXPECT_EQ(error({{"calibration", {1}}}), "s.json: _meta.calibration must be an array of objects");
    // Through the stats file, with the file's name.
    EXPECT_THROW(
        ExpertStats::from_json(
            {{"0", {{"total_tokens", 1}, {"activation_counts", {1}}, {"reap", {0}}}}, {"_meta", "x"}}, "f.json"),
        Error);
}

TEST(StatsMeta, SameModelCheck) {
    StatsMeta a;
    a.architecture = "qwen3moe", a.n_expert = 16, a.model = "a.gguf", a.model_size = 100;
    StatsMeta b = a;
    EXPECT_NO_THROW(check_same_model(a, b, "b.json"));
    b.model = "b.gguf";  // another file of the same shape
    EXPECT_THROW(check_same_model(a, b, "b.json"), Error);
    EXPECT_NO_THROW(check_same_model(a, b, "b.json", SameModel::shape));
    b.architecture = "gpt-oss";
    EXPECT_THROW(check_same_model(a, b, "b.json", SameModel::shape), Error);
    StatsMeta old;  // a prototype file records nothing: nothing to compare
    EXPECT_NO_THROW(check_same_model(a, old, "old.json"));
}

// Every registered criterion has a name that parses back, a meaning, and scores every expert.
TEST(Criteria, RegistryEntriesAreComplete) {
    LayerStats L  = sample_layer();
    L.imatrix_sum = {4.0, 2.0, 1.0, 0.0};  // what an importance matrix gives (gguf/imatrix_prune.h)
    for (const auto & c : criteria()) {
        EXPECT_EQ(parse_criterion(c.name), c.id);
        EXPECT_STREQ(criterion_name(c.id), c.name);
        EXPECT_GT(std::string(c.meaning).size(), 5u) << c.name;
        EXPECT_EQ(expert_scores(L, c.id, 1, 0).size(), L.n_expert()) << c.name;
    }
    EXPECT_EQ(criterion_names().size(), criteria().size());
    EXPECT_THROW(parse_criterion("nope"), Error);
    EXPECT_EQ(expert_scores(L, Criterion::reap, 0, 0), L.reap());
    EXPECT_EQ(expert_scores(L, Criterion::frequency, 0, 0), L.activation_frequency());
}

// reap-sq-sum: Σ (g‖f‖)² / all tokens of the layer, and the pruning order it gives, from
// hand-computed sums; the imatrix criteria refuse statistics without an importance matrix's sums.
TEST(Criteria, ReapSqSumRanksByTheSumOfSquaresPerToken) {
    const LayerStats L = sample_layer();
    // expert 0: 1.5² + 0.5² + 2² = 6.5; expert 1: 1² + 0² = 1; expert 2: 1.5² = 2.25; expert 3: never
    const std::vector<double> want = {6.5 / 3, 1.0 / 3, 2.25 / 3, 0.0};
    const auto                got  = expert_scores(L, Criterion::reap_sq_sum, 0, 0);
    ASSERT_EQ(got.size(), want.size());
    for (size_t e = 0; e < want.size(); e++)
        EXPECT_DOUBLE_EQ(got[e], want[e]) << e;
    // lowest first: 3 (never routed), 1, 2, 0
    EXPECT_EQ(pruning_order({0, 1, 2, 3}, got, L.count), (std::vector<uint32_t>{3, 1, 2, 0}));
    EXPECT_EQ(parse_criterion("reap-sq-sum"), Criterion::reap_sq_sum);
    EXPECT_THROW(expert_scores(L, Criterion::imatrix_sum, 0, 0), Error);
    EXPECT_THROW(expert_scores(L, Criterion::imatrix_mean, 0, 0), Error);
    EXPECT_TRUE(criterion_info(Criterion::imatrix_sum).from_imatrix);
    EXPECT_FALSE(criterion_info(Criterion::reap_sq_sum).from_imatrix);
    // reap report scores stats files: its choices leave the imatrix criteria out.
    const auto report = criterion_names(true, true);
    EXPECT_EQ(std::count(report.begin(), report.end(), "imatrix-sum"), 0);
    EXPECT_EQ(std::count(report.begin(), report.end(), "reap-sq-sum"), 1);
}

// reap-renorm's sum: hand-computed mean, merges like the other sums, survives the stats file,
// and is absent (and the criterion refused) for files that predate it or runs merged with them.
TEST(LayerStats, ReapRenormSumIsMergeableAndKnownAbsent) {
    LayerStats   a(3), b(3), whole(3);
    const double data[][3] = {{0, .5, 1.5}, {1, .5, 0.25}, {0, .8, 2.0}, {2, .2, 4.0}};
    for (int i = 0; i < 4; i++) {
        const auto & d = data[i];
        (i < 2 ? a : b).add(uint32_t(d[0]), d[1], d[1], 1.0, d[1], d[2]);
        whole.add(uint32_t(d[0]), d[1], d[1], 1.0, d[1], d[2]);
    }
    a.total_tokens = b.total_tokens = 1;
    whole.total_tokens              = 2;
    EXPECT_EQ(whole.reap_renorm(), (std::vector<double>{(1.5 + 2.0) / 2, 0.25, 4.0}));
    EXPECT_EQ(expert_scores(whole, Criterion::reap_renorm, 0, 0), whole.reap_renorm());
    a.merge(b);
    EXPECT_EQ(a.renorm_sum, whole.renorm_sum);

    ExpertStats s;
    s.layers.emplace(0, whole);
    const std::string path = test::tmp_dir() + "/renorm.json";
    s.save(path);
    const ExpertStats r = ExpertStats::load(path);
    EXPECT_EQ(r.layers.at(0).renorm_sum, whole.renorm_sum);

    // A file without the sum (an older reap): loads, but reap-renorm cannot score it.
    const json old       = {{"0", {{"total_tokens", 2}, {"activation_counts", {2, 1, 1}}, {"reap", {0.5, 0.5, 0.2}}}}};
    LayerStats old_layer = ExpertStats::from_json(old, "old.json").layers.at(0);
    EXPECT_FALSE(old_layer.has_renorm());
    EXPECT_THROW(expert_scores(old_layer, Criterion::reap_renorm, 0, 0), Error);
    EXPECT_NO_THROW(expert_scores(old_layer, Criterion::reap, 0, 0));
    LayerStats mixed = whole;
    mixed.merge(old_layer);  // half of the tokens never measured: the sum is unknown, not partial
    EXPECT_FALSE(mixed.has_renorm());
    json neg                    = old;
    neg["0"]["reap_renorm_sum"] = {1.0, -1.0, 0.0};
    EXPECT_THROW(ExpertStats::from_json(neg, "neg.json"), Error);
}

// Inputs found by fuzzing (tests/data/fuzz): each was accepted, silently wrong, or crashed.
TEST(ExpertStats, RefusesFuzzedFilesWithOneLineNamingTheFile) {
    const std::string                           dir     = std::string(REAP_SOURCE_DIR) + "/tests/data/fuzz/";
    const std::pair<const char *, const char *> cases[] = {
        {"st_dup01.json", "key \"01\" is not a layer index"},  // "01" next to "1": one layer was dropped
        {"st_count_gt_total.json", "layer 0: expert 1 has 1000000000000000 activations but the layer saw 1743 tokens"},
        {"st_neg_reap.json", "'reap_sum' of expert 0 is -1; it must be finite and not negative"},
        {"st_meta5.json", "_meta must be an object (it is number)"},
        {"st_complete_str.json", "_meta.progress must be an object"},
        {"st_zero.json", "has sums but no activations"},
    };
    for (const auto & [file, why] : cases) {
        try {
            ExpertStats::load(dir + file);
            ADD_FAILURE() << file << " was accepted";
        } catch (const Error & e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind(dir + file + ": ", 0), 0u) << msg;
            EXPECT_NE(msg.find(why), std::string::npos) << msg;
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        }
    }
    const json layer = {{"total_tokens", 4}, {"activation_counts", {1, 2}}, {"reap", {0.5, 0.5}}};
    for (const char * key : {"+1", " 1", "1abc", "00", "-1"}) {
        EXPECT_THROW(ExpertStats::from_json({{"0", layer}, {key, layer}}, "k.json"), Error) << key;
    }
    EXPECT_EQ(ExpertStats::from_json({{"0", layer}, {"model_info", 1}}, "k.json").layers.size(),
              1u);  // other tools' keys
}

// A "_meta" nested 100k deep once overflowed the stack when copied: refused before any copy
// (StatsMeta::parse checks the depth itself too, for JSON that does not come from a file).
TEST(ExpertStats, RefusesADeeplyNestedMeta) {
    const std::string path = test::tmp_dir() + "/deep.json";
    std::string text = R"({"0": {"total_tokens": 4, "activation_counts": [1, 2], "reap": [0.5, 0.5]}, "_meta": {"x": )";
    text += std::string(100000, '[') + std::string(100000, ']') + "}}";
    test::write_bytes(path, text.data(), text.size());
    try {
        ExpertStats::load(path);
        ADD_FAILURE() << "accepted";
    } catch (const Error & e) {
        const std::string msg = e.what();  // refused by the JSON reader or by StatsMeta, whichever looks first
        EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
        EXPECT_NE(msg.find("deeper than 64 levels"), std::string::npos) << msg;
    }
}

}  // namespace
