// Several calibration sets (stats/stats_combine.h): each rule against a hand computation on
// tiny statistics, the plan's record of the sets, the tokens rule being `reap merge` then prune,
// and the refusals (sets of different models, the same set twice, weights the rule cannot use).
#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "gguf/gguf_file.h"
#include "model/open_model.h"
#include "profile/profiler.h"
#include "prune/prune_request.h"
#include "stats/stats_combine.h"
#include "support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace reap;
using nlohmann::json;

namespace {

// One MoE layer (index 0) of 3 experts: `total` tokens, `count` routed to each expert, and the
// REAP mean of each (reap_sum = count x mean).
ExpertStats one_layer(uint64_t total, std::vector<uint64_t> count, std::vector<double> reap_mean) {
    ExpertStats s;
    LayerStats  L(3);
    L.total_tokens = total;
    L.count        = count;
    for (size_t e = 0; e < 3; e++) {
        L.reap_sum[e] = double(count[e]) * reap_mean[e];
        L.gate_sum[e] = 0.5 * double(count[e]);
        L.ean_sum[e]  = 2.0 * L.reap_sum[e];
    }
    s.layers[0]   = L;
    s.meta.tokens = total;
    return s;
}

// Set a (100 tokens): REAP [1, 2, 0.5], frequency [0.5, 0.3, 0.2].
// Set b (300 tokens): REAP [0.5, 1, 3], frequency [0.2, 0.1, 0.7].
struct TwoSets {
    std::string a, b;
    TwoSets() {
        const std::string dir = test::tmp_dir();
        a                     = dir + "/a.json";
        b                     = dir + "/b.json";
        one_layer(100, {50, 30, 20}, {1.0, 2.0, 0.5}).save(a);
        one_layer(300, {60, 30, 210}, {0.5, 1.0, 3.0}).save(b);
    }
    std::vector<double> scores(StatsCombine rule, Criterion c, std::vector<double> w = {}) const {
        return load_calibration_sets({a, b}, w, rule).scores(c, 42).at(0);
    }
};

void expect_scores(const std::vector<double> & got, const std::vector<double> & want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t e = 0; e < want.size(); e++)
        EXPECT_NEAR(got[e], want[e], 1e-12) << "expert " << e;
}

TEST(StatsCombine, EachRuleAsComputedByHand) {
    const TwoSets t;
    // tokens: the sums added. REAP = (50x1 + 60x0.5) / 110, (30x2 + 30x1) / 60, (20x0.5 + 210x3) / 230;
    // frequency = 110/400, 60/400, 230/400.
    expect_scores(t.scores(StatsCombine::tokens, Criterion::reap), {80.0 / 110, 90.0 / 60, 640.0 / 230});
    expect_scores(t.scores(StatsCombine::tokens, Criterion::frequency), {110.0 / 400, 60.0 / 400, 230.0 / 400});
    // mean: each set's own score, half each, whatever the set's size.
    expect_scores(t.scores(StatsCombine::mean, Criterion::reap), {0.75, 1.5, 1.75});
    expect_scores(t.scores(StatsCombine::mean, Criterion::frequency), {0.35, 0.2, 0.45});
    // max: the larger of the halved scores.
    expect_scores(t.scores(StatsCombine::max, Criterion::reap), {0.5, 1.0, 1.5});
    expect_scores(t.scores(StatsCombine::max, Criterion::frequency), {0.25, 0.15, 0.35});
    // Weights 3,1 -> 0.75, 0.25.
    expect_scores(t.scores(StatsCombine::mean, Criterion::reap, {3, 1}), {0.875, 1.75, 1.125});
    expect_scores(t.scores(StatsCombine::max, Criterion::reap, {3, 1}), {0.75, 1.5, 0.75});
    // One set: the criterion on it, whatever the rule.
    for (StatsCombine rule : {StatsCombine::tokens, StatsCombine::mean, StatsCombine::max})
        expect_scores(load_calibration_sets({t.a}, {}, rule).scores(Criterion::reap, 42).at(0), {1.0, 2.0, 0.5});
    // The merged statistics add the counts (ties in the order, super experts).
    EXPECT_EQ(load_calibration_sets({t.a, t.b}, {}, StatsCombine::max).merged.layers.at(0).count,
              (std::vector<uint64_t>{110, 60, 230}));
}

// The message of the UsageError `f` throws, or "(no usage error)".
template <typename F>
std::string usage(F f) {
    try {
        f();
    } catch (const UsageError & e) {
        return std::string(e.what());
    }
    return std::string("(no usage error)");
}

TEST(StatsCombine, RefusesWeightsItCannotUse) {
    const TwoSets t;
    EXPECT_NE(usage([&] {
                  load_calibration_sets({t.a, t.b}, {1, 2}, StatsCombine::tokens);
              }).find("takes no weights"),
              std::string::npos);
    EXPECT_NE(usage([&] {
                  load_calibration_sets({t.a, t.b}, {1}, StatsCombine::mean);
              }).find("1 weight(s) for 2"),
              std::string::npos);
    EXPECT_NE(usage([&] { parse_stats_weights("1,-2", 2); }).find("'-2' is not a positive number"), std::string::npos);
    EXPECT_NE(usage([&] { parse_stats_weights("1,x", 2); }).find("'x'"), std::string::npos);
    EXPECT_NE(usage([&] { parse_stats_combine("median"); }).find("tokens, mean, max"), std::string::npos);
    // Equal weights with the tokens rule say nothing new: accepted.
    EXPECT_NO_THROW(load_calibration_sets({t.a, t.b}, {2, 2}, StatsCombine::tokens));
}

// Weights whose plain sum overflows (1e308,1e308) used to normalise to 0, every score with them:
// an arbitrary plan. They are 1,1; a weight too small beside the largest to stay positive once
// normalised, or one that is not finite, is a usage error naming --stats-weights, on the command
// line (before any file is read) and from the library.
TEST(StatsCombine, HugeWeightsNormaliseWithoutOverflow) {
    const TwoSets t;
    EXPECT_EQ(normalised_stats_weights({1e308, 1e308}, 2), (std::vector<double>{0.5, 0.5}));
    EXPECT_EQ(normalised_stats_weights({1, 3}, 2), (std::vector<double>{0.25, 0.75}));
    EXPECT_EQ(normalised_stats_weights({}, 4), (std::vector<double>(4, 0.25)));
    EXPECT_EQ(parse_stats_weights("1e308,1e308", 2), (std::vector<double>{1e308, 1e308}));
    for (StatsCombine rule : {StatsCombine::mean, StatsCombine::max}) {
        const auto huge = t.scores(rule, Criterion::reap, {1e308, 1e308});
        EXPECT_EQ(huge, t.scores(rule, Criterion::reap, {1, 1}));
        EXPECT_GT(*std::max_element(huge.begin(), huge.end()), 0.0);
    }
    for (const auto & set : load_calibration_sets({t.a, t.b}, {1e308, 1e308}, StatsCombine::mean).sets)
        EXPECT_EQ(set.weight, 0.5);

    EXPECT_NE(usage([&] { parse_stats_weights("1e-300,1e300", 2); }).find("--stats-weights: 1e-300 is too small"),
              std::string::npos);
    EXPECT_NE(usage([&] {
                  load_calibration_sets({t.a, t.b}, {1, std::numeric_limits<double>::infinity()}, StatsCombine::max);
              }).find("--stats-weights: inf is not a positive finite number"),
              std::string::npos);
    EXPECT_NE(usage([&] {
                  load_calibration_sets({t.a, t.b}, {1, std::nan("")}, StatsCombine::max);
              }).find("--stats-weights: nan is not"),
              std::string::npos);
    for (const std::string cmd : {"prune", "sweep"}) {
        std::vector<std::string> args = {cmd,
                                         "-m",
                                         "absent.gguf",
                                         "--stats",
                                         t.a,
                                         "--stats",
                                         t.b,
                                         "-o",
                                         test::tmp_dir() + "/out",
                                         "--stats-weights",
                                         "1e-300,1e300"};
        if (cmd == "sweep") args.insert(args.end(), {"--data", "absent.txt"});
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
        EXPECT_NE(r.err.find("--stats-weights: 1e-300 is too small"), std::string::npos) << cmd << ": " << r.err;
    }
}

const std::string k_code  = std::string(REAP_SOURCE_DIR) + "/data/calibration/code.jsonl";
const std::string k_prose = std::string(REAP_SOURCE_DIR) + "/data/calibration/prose.jsonl";

std::string profile(const std::string & model, const std::string & data, const std::string & out) {
    ProfileOptions p;
    p.model       = model;
    p.data        = {data};
    p.output      = out;
    p.max_samples = 4;
    p.progress    = false;
    p.n_threads   = 1;
    log_init(LogLevel::error);
    run_profile(p);
    return out;
}

synth::Options small_model() {
    synth::Options o;
    o.arch          = "qwen3moe";
    o.n_layer       = 2;
    o.n_expert      = 16;
    o.n_expert_used = 4;
    return o;
}

TEST(StatsCombine, PruneRecordsTheSetsAndTokensIsMergeThenPrune) {
    const std::string dir   = test::tmp_dir();
    const std::string model = test::synth_model(small_model());
    const std::string code  = profile(model, k_code, dir + "/code.json");
    const std::string prose = profile(model, k_prose, dir + "/prose.json");

    PruneRequest r;
    r.model         = model;
    r.stats         = {code, prose};
    r.keep_ratios   = {0.5};
    r.dry_run       = true;
    r.stats_combine = StatsCombine::mean;
    r.stats_weights = {1, 3};
    const json plan = run_prune(r).plan_report;
    EXPECT_EQ(plan["stats"], "code.json+prose.json");
    const json & sets = plan.at("calibration_sets");
    EXPECT_EQ(sets["rule"], "mean");
    ASSERT_EQ(sets["sets"].size(), 2u);
    EXPECT_EQ(sets["sets"][0]["stats"], code);
    EXPECT_EQ(sets["sets"][1]["stats"], prose);
    EXPECT_EQ(sets["sets"][0]["weight"], 0.25);
    EXPECT_EQ(sets["sets"][1]["weight"], 0.75);
    EXPECT_EQ(sets["sets"][0]["tokens"], *ExpertStats::load(code).meta.tokens);
    EXPECT_EQ(sets["sets"][1]["tokens"], *ExpertStats::load(prose).meta.tokens);
    EXPECT_EQ(plan["calibration_convergence"]["sets"].size(), 2u);
    // The kept experts' scores are the weighted means of each set's REAP.
    const ExpertStats a = ExpertStats::load(code), b = ExpertStats::load(prose);
    for (const auto & [key, layer] : plan["layers"].items()) {
        const int  il = std::stoi(key);
        const auto sa = a.layers.at(il).reap(), sb = b.layers.at(il).reap();
        for (const auto & [e, v] : layer["kept_scores"].items())
            EXPECT_NEAR(v.get<double>(), 0.25 * sa[std::stoul(e)] + 0.75 * sb[std::stoul(e)], 1e-12);
    }

    // The tokens rule keeps what `reap merge` then prune keeps.
    ASSERT_EQ(test::run_reap({"merge", code, prose, "-o", dir + "/merged.json"}).exit_code, 0);
    const auto via_merge = test::run_reap({"prune", "-m", model, "--stats", dir + "/merged.json", "--keep-ratio", "0.5",
                                           "--dry-run", "--no-protect-super-experts"});
    const auto tokens    = test::run_reap({"prune", "-m", model, "--stats", code, "--stats", prose, "--stats-combine",
                                           "tokens", "--keep-ratio", "0.5", "--dry-run", "--no-protect-super-experts"});
    ASSERT_EQ(via_merge.exit_code, 0) << via_merge.err;
    ASSERT_EQ(tokens.exit_code, 0) << tokens.err;
    const json pm = json::parse(via_merge.out), pt = json::parse(tokens.out);
    EXPECT_EQ(pt["calibration_sets"]["rule"], "tokens");
    for (const auto & [key, layer] : pm["layers"].items())
        EXPECT_EQ(pt["layers"][key]["kept"], layer["kept"]) << "layer " << key;

    // On the command line: the default rule is recorded, and weights are parsed per file.
    const auto cli = test::run_reap({"prune", "-m", model, "--stats", code, "--stats", prose, "--stats-weights",
                                     "1,2,3", "--keep-ratio", "0.5", "--dry-run"});
    EXPECT_EQ(cli.exit_code, 2);
    EXPECT_NE(cli.err.find("3 weight(s) for 2 --stats file(s)"), std::string::npos) << cli.err;
    const auto dflt =
        test::run_reap({"prune", "-m", model, "--stats", code, "--stats", prose, "--keep-ratio", "0.5", "--dry-run"});
    ASSERT_EQ(dflt.exit_code, 0) << dflt.err;
    EXPECT_EQ(json::parse(dflt.out)["calibration_sets"]["rule"], stats_combine_info(k_default_stats_combine).name);
}

// `reap sweep --stats a --stats b` prunes as prune does with the same rule, and says which sets.
TEST(StatsCombine, SweepTakesSeveralSets) {
    const std::string dir   = test::tmp_dir();
    const std::string model = test::synth_model(small_model());
    const std::string code  = profile(model, k_code, dir + "/code.json");
    const std::string prose = profile(model, k_prose, dir + "/prose.json");
    const auto        sweep = test::run_reap({"sweep",
                                              "-m",
                                              model,
                                              "--stats",
                                              code,
                                              "--stats",
                                              prose,
                                              "--stats-combine",
                                              "max",
                                              "--data",
                                              std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt",
                                              "--ratios",
                                              "0.5",
                                              "--criteria",
                                              "reap",
                                              "-c",
                                              "64",
                                              "--chunks",
                                              "2",
                                              "--max-kl",
                                              "100",
                                              "--keep-all",
                                              "-o",
                                              dir + "/sweep",
                                              "--no-progress"});
    ASSERT_EQ(sweep.exit_code, 0) << sweep.err;
    const auto prune = test::run_reap({"prune", "-m", model, "--stats", code, "--stats", prose, "--stats-combine",
                                       "max", "--keep-ratio", "0.5", "-o", dir + "/pruned.gguf", "--no-progress"});
    ASSERT_EQ(prune.exit_code, 0) << prune.err;
    const json report = read_json_file(dir + "/sweep/sweep.json", "sweep report");
    EXPECT_EQ(report["identity"]["stats"], "code.json+prose.json");
    const auto kept = [](const std::string & path) {
        const GgufFile f = GgufFile::open(path);
        return std::make_pair(f.get_uint_array("reap.prune.layer.0.kept"), f.get_uint_array("reap.prune.layer.1.kept"));
    };
    EXPECT_EQ(kept(dir + "/sweep/reap-50.gguf"), kept(dir + "/pruned.gguf"));
}

TEST(StatsCombine, RefusesSetsOfAnotherModelAndTheSameSetTwice) {
    const std::string dir   = test::tmp_dir();
    synth::Options    other = small_model();
    other.seed              = 7;
    const std::string model = test::synth_model(small_model());
    const std::string code  = profile(model, k_code, dir + "/code.json");
    const std::string alien = profile(test::synth_model(other), k_prose, dir + "/alien.json");

    auto refused = [&](const std::vector<std::string> & stats) {
        const auto cli = test::run_reap({"prune", "-m", model, "--stats", stats[0], "--stats", stats[1], "--keep-ratio",
                                         "0.5", "-o", dir + "/out.gguf"});
        EXPECT_EQ(cli.exit_code, 1) << cli.err;
        EXPECT_FALSE(std::filesystem::exists(dir + "/out.gguf"));
        return cli.err;
    };
    std::string err = refused({code, alien});
    EXPECT_NE(err.find(alien + ": router_fingerprint is"), std::string::npos) << err;
    EXPECT_NE(err.find("statistics of different models"), std::string::npos) << err;
    err = refused({code, code});
    EXPECT_NE(err.find("given twice"), std::string::npos) << err;
    std::filesystem::copy_file(code, dir + "/copy.json");
    err = refused({code, dir + "/copy.json"});
    EXPECT_NE(err.find("the same calibration run as"), std::string::npos) << err;
}

}  // namespace
