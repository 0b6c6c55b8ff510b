// The prune job as a library call (prune/prune_request): kept counts, output names, refusals of
// statistics that belong to another model or to an unfinished run, and the report's dropped set
// on a grouped model being exactly prune's.
#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "core/output_lock.h"
#include "gguf/moe_layout.h"
#include "model/open_model.h"
#include "moe/expert_budget.h"
#include "profile/profiler.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <unistd.h>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

synth::Options model_of(const std::string & arch, int n_layer) {
    synth::Options o;
    o.arch          = arch;
    o.n_layer       = n_layer;
    o.n_expert      = 16;
    o.n_expert_used = 4;
    return o;
}

using test::profile;

std::string error_of(const PruneRequest & r) {
    try {
        run_prune(r);
    } catch (const Error & e) {
        return e.what();
    }
    return "(no error)";
}

TEST(PruneRequest, OptionParsingAndOutputNames) {
    EXPECT_EQ(parse_keep_ratios("0.25,0.5"), (std::vector<double>{0.25, 0.5}));
    EXPECT_THROW(parse_keep_ratios("0.5,x"), Error);
    EXPECT_THROW(parse_keep_ratios("0.5abc"), Error);
    EXPECT_EQ(parse_split_size("500M"), 500ull << 20);
    EXPECT_EQ(parse_split_size("4G"), 4ull << 30);
    EXPECT_EQ(parse_split_size("123"), 123u);
    EXPECT_EQ(parse_split_size(""), 0u);
    EXPECT_THROW(parse_split_size("12Q"), Error);
    EXPECT_THROW(parse_split_size("-1M"), Error);
    EXPECT_EQ(ratio_output_name("out.gguf", 0.5, false), "out.gguf");
    EXPECT_EQ(ratio_output_name("out.gguf", 0.5, true), "out-keep0.50.gguf");
    EXPECT_EQ(ratio_output_name("m-{keep}.gguf", 0.25, false), "m-0.25.gguf");
    EXPECT_EQ(ratio_output_name("out", 0.75, true), "out-keep0.75");
}

TEST(PruneRequest, PlansEveryRatioOnceWithoutWriting) {
    const std::string model = test::synth_model(model_of("qwen3moe", 2));
    const std::string dir   = test::tmp_dir();
    PruneRequest      r;
    r.model              = model;
    r.stats              = {profile(model, dir + "/s.json")};
    r.keep_ratios        = {0.5, 0.75};
    r.output             = dir + "/out.gguf";
    r.dry_run            = true;
    r.plan_out           = dir + "/plan.json";
    const PruneOutcome o = run_prune(r);
    ASSERT_EQ(o.outputs.size(), 2u);
    EXPECT_FALSE(o.wrote_models);
    EXPECT_EQ(o.outputs[0].job.plan.expert_count(), 8u);
    EXPECT_EQ(o.outputs[1].job.plan.expert_count(), 12u);
    EXPECT_EQ(o.outputs[0].job.output, dir + "/out-keep0.50.gguf");
    EXPECT_LT(o.outputs[0].output_size, o.outputs[1].output_size);
    EXPECT_EQ(o.plan_report["plans"].size(), 2u);
    EXPECT_EQ(json::parse(std::ifstream(dir + "/plan.json")), o.plan_report);
    EXPECT_FALSE(std::filesystem::exists(dir + "/out-keep0.50.gguf"));

    PruneRequest same = r;  // 0.5 and 0.51 both keep 8 of 16: one output name twice
    same.keep_ratios  = {0.5, 0.51};
    EXPECT_NE(error_of(same).find("--keep-ratio 0.5 and 0.51 both keep 8 of 16 experts"), std::string::npos)
        << error_of(same);

    PruneRequest both = r;  // exactly one amount
    both.keep         = 8;
    EXPECT_NE(error_of(both).find("exactly one of"), std::string::npos);
    PruneRequest none = r;
    none.keep_ratios.clear();
    EXPECT_NE(error_of(none).find("exactly one of"), std::string::npos);
    PruneRequest no_out = r;
    no_out.dry_run      = false;
    no_out.output.clear();
    EXPECT_NE(error_of(no_out).find("give -o/--output"), std::string::npos);
}

// Same number of layers, experts and experts per token; another architecture: its statistics
// rank another model's experts.
TEST(PruneRequest, RefusesStatsOfAnotherArchitectureOfTheSameShape) {
    const std::string qwen      = test::synth_model(model_of("qwen3moe", 2));
    const std::string oss       = test::synth_model(model_of("gpt-oss", 2));
    const std::string dir       = test::tmp_dir();
    const std::string oss_stats = profile(oss, dir + "/oss.json", 4);
    ASSERT_EQ(ExpertStats::load(oss_stats).shape().moe_layers,
              analyze_moe(GgufFile::open(qwen)).shape().moe_layers);  // the same shape

    PruneRequest r;
    r.model               = qwen;
    r.stats               = {oss_stats};
    r.keep_ratios         = {0.5};
    r.dry_run             = true;
    const std::string err = error_of(r);
    EXPECT_EQ(err.rfind(oss_stats + ": statistics of a gpt-oss model, but the model is qwen3moe", 0), 0u) << err;
    const auto cli =
        test::run_reap({"prune", "-m", qwen, "--stats", oss_stats, "--keep-ratio", "0.5", "-o", dir + "/x.gguf"});
    EXPECT_EQ(cli.exit_code, 1);
    EXPECT_NE(cli.err.find("statistics of another model"), std::string::npos) << cli.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

// Same architecture and shape, other weights (another seed): the router fingerprint tells them
// apart; another quantization of the same model (routers stay F32) is accepted.
TEST(PruneRequest, RefusesStatsOfOtherWeightsAndAcceptsAnotherQuantization) {
    synth::Options q8 = model_of("qwen3moe", 2), f16 = q8, seed7 = q8;
    f16.type                = GGML_TYPE_F16;
    seed7.seed              = 7;
    const std::string dir   = test::tmp_dir();
    const std::string stats = profile(test::synth_model(seed7), dir + "/seed7.json", 4);
    ASSERT_TRUE(ExpertStats::load(stats).meta.router_fingerprint.has_value());
    PruneRequest r;
    r.model       = test::synth_model(q8);
    r.stats       = {stats};
    r.keep_ratios = {0.5};
    r.dry_run     = true;
    EXPECT_NE(error_of(r).find("statistics of a model with other router weights"), std::string::npos) << error_of(r);

    r.stats = {profile(test::synth_model(q8), dir + "/q8.json", 4)};
    r.model = test::synth_model(f16);
    EXPECT_EQ(run_prune(r).outputs.size(), 1u);
}

TEST(PruneRequest, AnUnfinishedCheckpointNeedsAllowIncomplete) {
    const std::string model = test::synth_model(model_of("qwen3moe", 2));
    const std::string dir   = test::tmp_dir();
    ExpertStats       s     = ExpertStats::load(profile(model, dir + "/s.json", 4));
    s.meta.progress         = StatsProgress{4, 321, false};
    s.save(dir + "/partial.json");

    PruneRequest r;
    r.model       = model;
    r.stats       = {dir + "/partial.json"};
    r.keep_ratios = {0.5};
    r.dry_run     = true;
    EXPECT_NE(error_of(r).find("unfinished profile run (4 samples, 321 tokens done)"), std::string::npos)
        << error_of(r);
    EXPECT_NE(error_of(r).find("--allow-incomplete"), std::string::npos);

    const auto cli = test::run_reap(
        {"prune", "-m", model, "--stats", r.stats[0], "--keep-ratio", "0.5", "--dry-run", "--allow-incomplete"});
    EXPECT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_NE(cli.err.find("reap: warning: " + r.stats[0] + " is a checkpoint of an unfinished profile run"),
              std::string::npos)
        << cli.err;
    EXPECT_EQ(cli.err.find("WARNING"), std::string::npos) << "one prefix: " << cli.err;
}

// Per layer, the experts the report crosses out: "dropped at keep-ratio" in a heatmap cell's title.
std::map<int, std::vector<uint32_t>> report_dropped(const std::string & html) {
    std::map<int, std::vector<uint32_t>> out;
    const std::regex                     cell("<title>layer (\\d+), expert (\\d+)\n[^<]*dropped at keep-ratio");
    for (auto it = std::sregex_iterator(html.begin(), html.end(), cell); it != std::sregex_iterator(); ++it) {
        out[std::stoi((*it)[1])].push_back(uint32_t(std::stoul((*it)[2])));
    }
    return out;
}

// Expert groups: prune keeps the same number in every group, and the report marks exactly that.
TEST(PruneRequest, ReportDropsWhatPruneDropsOnAGroupedModel) {
    synth::Options o;
    o.arch                     = "deepseek2";  // 16 experts in 4 groups; layer 0 dense
    o.n_layer                  = 3;
    const std::string model    = test::synth_model(o);
    const std::string dir      = test::tmp_dir();
    const std::string stats    = profile(model, dir + "/s.json");
    const ExpertStats profiled = ExpertStats::load(stats);
    EXPECT_EQ(profiled.meta.n_expert_groups, 4u);
    for (const char * ratio : {"0.5", "0.75"}) {
        SCOPED_TRACE(ratio);
        const auto plan = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", ratio, "--dry-run"});
        ASSERT_EQ(plan.exit_code, 0) << plan.err;
        const auto rep = test::run_reap({"report", stats, "--keep-ratio", ratio, "-o", dir + "/r.html"});
        ASSERT_EQ(rep.exit_code, 0) << rep.err;
        const auto bytes   = test::read_bytes(dir + "/r.html");
        const auto dropped = report_dropped(std::string(bytes.begin(), bytes.end()));
        const json p       = json::parse(plan.out);
        ASSERT_EQ(dropped.size(), p["layers"].size());
        bool groups_matter = false;  // ignoring the groups would have chosen otherwise somewhere
        for (const auto & [il, ids] : dropped) {
            const auto pruned = p["layers"][std::to_string(il)]["dropped"].get<std::vector<uint32_t>>();
            EXPECT_EQ(ids, pruned) << "layer " << il;
            const LayerStats & L = profiled.layers.at(il);
            groups_matter = groups_matter || test::dropped_ungrouped(L.reap(), L.count, std::stod(ratio)) != pruned;
        }
        EXPECT_TRUE(groups_matter);
    }
}

// Plans found by fuzzing (tests/data/fuzz): integers that wrapped, float ids that truncated,
// layer keys std::stoi read leniently ("1abc" as layer 1).
TEST(PlanFile, RefusesWrappingFloatAndLenientValues) {
    const std::string                           dir     = std::string(REAP_SOURCE_DIR) + "/tests/data/fuzz/";
    const std::pair<const char *, const char *> cases[] = {
        {"plan_wrapn.json", "n_expert must be an integer from 0 to 4294967295, not 4294967312"},
        {"plan_wrapid.json", "layer 0 kept id must be an integer from 0 to 4294967295, not 4294967297"},
        {"plan_floatid.json", "layer 0 kept id must be an integer from 0 to 4294967295, not 1e+20"},
        {"plan_dupkey.json", "layer key \"1abc\" is not a layer index"},
    };
    for (const auto & [file, why] : cases) {
        try {
            Plan::load(dir + file);
            ADD_FAILURE() << file << " was accepted";
        } catch (const Error & e) {
            EXPECT_EQ(std::string(e.what()), dir + file + ": not a valid plan (" + why + ")");
        }
    }
    const json ok = {
        {"criterion", "reap"}, {"n_expert", 4}, {"kept_experts", 2}, {"layers", {{"0", {{"kept", {1, 3}}}}}}};
    EXPECT_EQ(Plan::from_json(ok, "p.json").layers.at(0).kept, (std::vector<uint32_t>{1, 3}));
    for (const char * key : {"+1", " 1", "00", "01"}) {
        json bad           = ok;
        bad["layers"][key] = bad["layers"]["0"];
        EXPECT_THROW(Plan::from_json(bad, "p.json"), Error) << key;
    }
    json float_id                   = ok;
    float_id["layers"]["0"]["kept"] = {1, 7.9};
    EXPECT_THROW(Plan::from_json(float_id, "p.json"), Error);
    EXPECT_THROW(Plan::from_json(json::array(), "p.json"), Error);
}

// Issue 21: every output of prune (and synth) against every input and the other outputs. Each
// was written over its input with exit 0; now refused with exit 1, the file as it was.
TEST(PruneRequest, NoOutputReplacesAnInputOrAnotherOutput) {
    const std::string dir   = test::tmp_dir();
    const std::string model = dir + "/model.gguf";
    std::filesystem::copy_file(test::synth_model(model_of("qwen3moe", 2)), model);
    const std::string              stats = profile(model, dir + "/stats.json", 4), plan = dir + "/plan.json";
    const std::vector<std::string> with_stats = {"prune", "-m",           model, "--stats",
                                                 stats,   "--keep-ratio", "0.5", "--no-progress"};
    auto                           args       = [&](std::vector<std::string> a, std::vector<std::string> more) {
        a.insert(a.end(), more.begin(), more.end());
        return a;
    };
    ASSERT_EQ(test::run_reap(args(with_stats, {"--dry-run", "--plan-out", plan})).exit_code, 0);
    auto refused = [&](const std::vector<std::string> & a, const std::string & victim, const std::string & why) {
        const std::string before = test::read_text(victim);
        const auto        r      = test::run_reap(a);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        EXPECT_EQ(test::read_text(victim), before) << victim << " changed";
    };
    refused(args(with_stats, {"--dry-run", "--plan-out", model}), model, "is also an input");
    refused(args(with_stats, {"--dry-run", "--plan-out", stats}), stats, "is also an input");
    refused(args(with_stats, {"-o", stats}), stats, "is also an input");
    refused({"prune", "-m", model, "--plan", plan, "-o", plan, "--no-progress"}, plan, "is also an input");
    // Through a link, and another spelling of the same path.
    std::filesystem::create_symlink(stats, dir + "/link.json");
    refused(args(with_stats, {"--dry-run", "--plan-out", dir + "/link.json"}), stats, "is also an input");
    refused(args(with_stats, {"-o", dir + "/./model.gguf"}), model, "is also an input");
    // Two outputs with one name: the plan would vanish under the model.
    refused(args(with_stats, {"--plan-out", dir + "/x.gguf", "-o", dir + "/x.gguf"}), dir + "/x.gguf",
            "also given as another output");
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
    // synth: -o over the --vocab model it reads.
    std::filesystem::copy_file(model, dir + "/v.gguf");
    refused({"synth", "--vocab", dir + "/v.gguf", "-o", dir + "/v.gguf"}, dir + "/v.gguf", "is also an input");
}

// Issue 21: some shards of a sharded run rank experts on part of the data, as an unfinished
// checkpoint does: refused without --allow-incomplete, and report says what the file covers.
TEST(PruneRequest, SomeShardsOfARunNeedAllowIncomplete) {
    const std::string model = test::synth_model(model_of("qwen3moe", 2));
    const std::string dir   = test::tmp_dir();
    for (const char * k : {"1", "2", "3"}) {
        const auto r = test::run_reap({"profile", "-m", model, "--data", k_sample, "--shard", std::string(k) + "/3",
                                       "-o", dir + "/sh" + k + ".json", "--max-samples", "9", "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    ASSERT_EQ(test::run_reap({"merge", dir + "/sh1.json", dir + "/sh2.json", "-o", dir + "/sh12.json"}).exit_code, 0);
    ASSERT_EQ(test::run_reap({"merge", dir + "/sh12.json", dir + "/sh3.json", "-o", dir + "/all.json"}).exit_code, 0);
    PruneRequest r;
    r.model       = model;
    r.keep_ratios = {0.5};
    r.dry_run     = true;
    r.stats       = {dir + "/sh1.json"};
    EXPECT_NE(error_of(r).find("shard 1 of 3 of a sharded profile run (shards 2-3 missing)"), std::string::npos)
        << error_of(r);
    EXPECT_NE(error_of(r).find("--allow-incomplete"), std::string::npos);
    r.stats = {dir + "/sh12.json"};
    EXPECT_NE(error_of(r).find("shards 1-2 of 3 of a sharded profile run (shard 3 missing)"), std::string::npos)
        << error_of(r);
    r.stats = {dir + "/all.json"};
    EXPECT_EQ(error_of(r), "(no error)");

    const auto cli = test::run_reap(
        {"prune", "-m", model, "--stats", dir + "/sh1.json", "--keep-ratio", "0.5", "--dry-run", "--allow-incomplete"});
    EXPECT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_NE(cli.err.find("reap: warning: " + dir + "/sh1.json is shard 1 of 3"), std::string::npos) << cli.err;
    const auto rep = test::run_reap({"report", dir + "/sh1.json", "-o", dir + "/r.html"});
    EXPECT_EQ(rep.exit_code, 0) << rep.err;
    EXPECT_NE(rep.out.find("status incomplete: shard 1 of 3"), std::string::npos) << rep.out;
    EXPECT_NE(rep.err.find("shard 1 of 3"), std::string::npos) << rep.err;
    EXPECT_NE(test::read_text(dir + "/r.html").find("shard 1 of 3"), std::string::npos);
}

// Issue 21: a saved plan names experts by id, so it carries the model's router identity and is
// refused on another model of the same shape, as that model's stats are.
TEST(PruneRequest, APlanIsRefusedOnAnotherModelOfTheSameShape) {
    synth::Options a = model_of("qwen3moe", 2), b = a;
    b.seed                = 7;
    const std::string dir = test::tmp_dir();
    const std::string ma = test::synth_model(a), mb = test::synth_model(b);
    const std::string stats = profile(ma, dir + "/a.json", 4), plan = dir + "/a.plan.json";
    ASSERT_EQ(
        test::run_reap({"prune", "-m", ma, "--stats", stats, "--keep-ratio", "0.5", "--dry-run", "--plan-out", plan})
            .exit_code,
        0);
    const json saved = read_json_file(plan, "plan");
    EXPECT_TRUE(saved.contains("router_fingerprint"));
    EXPECT_TRUE(saved.contains("router_norms"));
    const auto other = test::run_reap({"prune", "-m", mb, "--plan", plan, "-o", dir + "/x.gguf", "--no-progress"});
    EXPECT_EQ(other.exit_code, 1);
    EXPECT_NE(other.err.find("a plan for a model with other router weights"), std::string::npos) << other.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
    const auto same = test::run_reap({"prune", "-m", ma, "--plan", plan, "-o", dir + "/y.gguf", "--no-progress"});
    EXPECT_EQ(same.exit_code, 0) << same.err;

    // Without the fingerprint the router norms still tell the models apart; a plan that records
    // neither (written before they existed) is applied as before.
    json j = saved;
    j.erase("router_fingerprint");
    std::ofstream(dir + "/norms.json") << j.dump();
    const auto norms = test::run_reap({"prune", "-m", mb, "--plan", dir + "/norms.json", "--dry-run"});
    EXPECT_EQ(norms.exit_code, 1);
    EXPECT_NE(norms.err.find("expert order"), std::string::npos) << norms.err;
    j.erase("router_norms");
    std::ofstream(dir + "/old.json") << j.dump();
    EXPECT_EQ(test::run_reap({"prune", "-m", mb, "--plan", dir + "/old.json", "--dry-run"}).exit_code, 0);
}

// One writer per output (core/output_lock.h): a second holder is refused naming the first's pid;
// the file goes with its holder; a file whose owner died (no flock held) is taken over.
TEST(OutputLock, OneHolderAtATimeAndAStaleFileIsTakenOver) {
    const std::string dir = test::tmp_dir(), lock = dir + "/.x.lock";
    {
        const OutputLock a(lock, "x");
        try {
            const OutputLock b(lock, "x");
            ADD_FAILURE() << "a second holder was let in";
        } catch (const Error & e) {
            EXPECT_NE(std::string(e.what()).find("another reap (pid " + std::to_string(::getpid()) + ")"),
                      std::string::npos)
                << e.what();
        }
    }
    EXPECT_FALSE(std::filesystem::exists(lock));
    std::ofstream(lock) << "999999999\n";
    {
        const OutputLock c(lock, "x");
        EXPECT_EQ(test::read_text(lock), std::to_string(::getpid()) + "\n");
    }
    EXPECT_EQ(OutputLock::path_for_file("out/m.gguf"), "out/.m.gguf.lock");
    EXPECT_EQ(OutputLock::path_for_file("m.gguf"), ".m.gguf.lock");
}

// Two prunes writing one output (a file or a split set) at once would mix their parts: the
// second is refused while the first holds the output's lock (issue 29, item 3).
TEST(PruneRequest, TwoPrunesIntoOneOutputAtOnceAreRefused) {
    const std::string model = test::synth_model(model_of("qwen3moe", 2));
    const std::string dir = test::tmp_dir(), out = dir + "/p.gguf";
    const std::string stats = test::profile(model, dir + "/s.json", 4);
    const OutputLock  held(OutputLock::path_for_file(out), out);
    const auto        r = test::run_reap(
               {"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "--split-max-size", "1M", "-o", out});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("another reap"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(dir + "/p-00001-of-00002.gguf"));
}

}  // namespace
