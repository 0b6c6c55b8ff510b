// Super experts (arXiv 2507.23279) end to end. `reap synth --super 1` plants one per MoE layer
// (rarely routed, one output channel ~50x the others'); profiling finds exactly those, at the
// planted channel; `reap prune` protects them by default, and frequency (which ranks rarely
// routed experts lowest) drops them once protection is off. The report marks them.
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "profile/profiler.h"
#include "stats/criteria.h"
#include "stats/expert_stats.h"
#include "stats/super_experts.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using namespace reap;
using nlohmann::json;

namespace {

// 2 MoE layers x 128 experts: the rule's 99.5th percentile of 256 maxima leaves the top two
// above it, so one planted super expert per layer can be found (fewer experts leave room for one).
synth::Options super_model() {
    synth::Options o;
    o.arch          = "qwen3moe";
    o.n_layer       = 2;
    o.n_embd        = 64;
    o.n_ff          = 32;
    o.n_expert      = 128;
    o.n_expert_used = 4;
    o.n_dead = o.n_rare = o.n_weak = 0;
    o.n_super                      = 1;
    o.type                         = GGML_TYPE_F32;
    return o;
}

std::set<std::pair<int, uint32_t>> planted(const GgufFile & f, const char * kind) {
    std::set<std::pair<int, uint32_t>> out;
    for (uint64_t il : f.get_uint_array("reap.synth.moe_layers")) {
        for (uint64_t e : f.get_uint_array(synth::planted_key(int(il), kind)))
            out.insert({int(il), uint32_t(e)});
    }
    return out;
}

bool in(const json & ids, uint32_t e) {
    for (const auto & v : ids)
        if (v.get<uint32_t>() == e) return true;
    return false;
}

TEST(SuperExperts, PlantedAreFoundProtectedAndDroppedWithoutProtection) {
    const std::string model = test::synth_model(super_model());
    const std::string dir   = test::tmp_dir();
    const GgufFile    f     = GgufFile::open(model);
    const auto        want  = planted(f, "super");
    ASSERT_EQ(want.size(), 2u);

    const std::string stats_file = test::profile(model, dir + "/stats.json", 16);
    const ExpertStats stats      = ExpertStats::load(stats_file);

    // Found: exactly the planted ones, each at its planted output channel.
    const SuperExperts found = find_super_experts(stats);
    ASSERT_TRUE(found.measured);
    std::set<std::pair<int, uint32_t>> got;
    for (const auto & s : found.experts) {
        got.insert({s.layer, s.expert});
        const auto ids = f.get_uint_array(synth::planted_key(s.layer, "super"));
        const auto ch  = f.get_uint_array(synth::planted_key(s.layer, "super_channel"));
        const auto at  = std::find(ids.begin(), ids.end(), uint64_t(s.expert));
        ASSERT_NE(at, ids.end());
        EXPECT_EQ(s.channel, ch[size_t(at - ids.begin())]) << "layer " << s.layer;
        EXPECT_GT(stats.layers.at(s.layer).count[s.expert], 0u);
    }
    EXPECT_EQ(got, want) << found.rule_text();

    // Protected by default: frequency alone would drop them (rarely routed), the plan keeps them
    // and says why.
    const auto plan_of = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"prune",     "-m",           model, "--stats",   stats_file,     "--criterion",
                                         "frequency", "--keep-ratio", "0.5", "--dry-run", "--no-progress"};
        args.insert(args.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return json::parse(r.out);
    };
    const json on = plan_of({});
    ASSERT_TRUE(on.contains("super_experts")) << on.dump();
    EXPECT_EQ(on["super_experts"]["experts"].size(), want.size());
    for (const auto & s : on["super_experts"]["experts"]) {
        EXPECT_TRUE(s["kept"].get<bool>());
        EXPECT_TRUE(s["criterion_would_drop"].get<bool>()) << "frequency should rank a rarely routed expert low";
        EXPECT_NE(s["why"].get<std::string>().find("threshold"), std::string::npos);
    }
    for (const auto & [il, e] : want)
        EXPECT_TRUE(in(on["layers"][std::to_string(il)]["kept"], e)) << "layer " << il << " expert " << e;

    // Without protection the same criterion drops them.
    const json off = plan_of({"--no-protect-super-experts"});
    EXPECT_FALSE(off.contains("super_experts"));
    for (const auto & [il, e] : want)
        EXPECT_TRUE(in(off["layers"][std::to_string(il)]["dropped"], e)) << "layer " << il << " expert " << e;

    // The report marks them, and states what the criterion it shows means.
    const auto rep = test::run_reap({"report", stats_file, "-o", dir + "/r.html", "--criterion", "max-activation"});
    ASSERT_EQ(rep.exit_code, 0) << rep.err;
    EXPECT_NE(rep.out.find(criterion_meaning(Criterion::max_activation)), std::string::npos) << rep.out;
    for (const auto & [il, e] : want) {
        EXPECT_NE(rep.out.find(strfmt("super experts [%u]", e)), std::string::npos) << rep.out;
    }
    EXPECT_NE(test::read_text(dir + "/r.html").find("Super experts"), std::string::npos);
}

// The rule itself on hand-made maxima: P99.5 with linear interpolation and a tenth of the largest.
TEST(SuperExperts, RuleMatchesHandComputedThreshold) {
    EXPECT_DOUBLE_EQ(percentile_linear({1, 2, 3, 4, 5}, 50), 3.0);
    EXPECT_DOUBLE_EQ(percentile_linear({1, 2, 3, 4}, 50), 2.5);
    EXPECT_DOUBLE_EQ(percentile_linear({4, 1, 3, 2}, 100), 4.0);
    EXPECT_DOUBLE_EQ(percentile_linear({}, 99.5), 0.0);

    // 200 experts in one layer: maxima 1..200 with expert 7 at 5000 (an outlier) and expert 9 at 400.
    ExpertStats s;
    LayerStats  L(200);
    L.total_tokens = 1;
    for (uint32_t e = 0; e < 200; e++) {
        L.count[e]           = 1;
        L.out_max[e]         = double(e + 1);
        L.out_max_channel[e] = e % 3;
    }
    L.out_max[7] = 5000;
    L.out_max[9] = 400;
    s.layers.emplace(0, L);
    const SuperExperts r = find_super_experts(s);
    // sorted maxima: ..., 199, 200, 400, 5000; P99.5 at position 0.995 * 199 = 198.005:
    // 400 + 0.005 * (5000 - 400) = 423; a tenth of the largest is 500: threshold 500.
    EXPECT_NEAR(r.percentile, 423.0, 1e-9);
    EXPECT_DOUBLE_EQ(r.threshold, 500.0);
    ASSERT_EQ(r.experts.size(), 1u);
    EXPECT_EQ(r.experts[0].expert, 7u);
    EXPECT_EQ(r.experts[0].channel, 7u % 3);
    EXPECT_TRUE(r.contains(0, 7));
    EXPECT_FALSE(r.contains(0, 9));  // above the percentile's neighbours, but not a tenth of the largest

    // Stats without maxima: nothing can be found, and it says so.
    s.layers.at(0).out_max.clear();
    EXPECT_FALSE(find_super_experts(s).measured);
}

}  // namespace
