// Super experts (arXiv 2507.23279) end to end. `reap synth --super 1` plants one per MoE layer
// (rarely routed, one output channel ~50x the others'); profiling finds exactly those, at the
// planted channel, on every preset's routing shape, and none on the same models without them;
// `reap prune` protects them by default, and frequency (which ranks rarely routed experts
// lowest) drops them once protection is off. The report marks them.
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "profile/profiler.h"
#include "stats/criteria.h"
#include "stats/expert_stats.h"
#include "stats/super_experts.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth.h"
#include "synth/synth_presets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

using namespace reap;
using nlohmann::json;

namespace {

// 2 MoE layers x 128 experts, one planted super expert in each.
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
        EXPECT_NE(s["why"].get<std::string>().find("the typical"), std::string::npos);
        EXPECT_GT(s["ratio_to_typical"].get<double>(), k_super_expert_ratio);
    }
    EXPECT_EQ(on["super_experts"]["min_ratio"], k_super_expert_ratio);
    EXPECT_EQ(on["super_experts"]["typical_max"].size(), 2u);
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

// The rule itself on hand-made maxima: more than 6x the typical maximum, the 75th percentile of
// the routed experts' maxima of the layer or of the model, whichever is larger.
TEST(SuperExperts, RuleIsTheRatioToTheTypicalMaximum) {
    EXPECT_DOUBLE_EQ(percentile_linear({1, 2, 3, 4, 5}, 50), 3.0);
    EXPECT_DOUBLE_EQ(percentile_linear({1, 2, 3, 4}, 50), 2.5);
    EXPECT_DOUBLE_EQ(percentile_linear({4, 1, 3, 2}, 100), 4.0);
    EXPECT_DOUBLE_EQ(percentile_linear({}, 99.5), 0.0);

    // Layers 0-5 of 8 experts with maxima 1.0-1.3 (the model's 75th percentile: 1.3), and:
    ExpertStats s;
    for (int il = 0; il < 7; il++) {
        LayerStats L(8);
        L.total_tokens = 100;
        for (uint32_t e = 0; e < 8; e++) {
            L.count[e]           = 5;
            L.out_max[e]         = 1.0 + 0.1 * (e % 4);
            L.out_max_channel[e] = e % 3;
        }
        s.layers.emplace(il, L);
    }
    s.layers.at(0).out_max[7] = 13;   // 10x: super
    s.layers.at(3).out_max[2] = 7.9;  // 6.08x: super
    s.layers.at(4).out_max[5] = 7.7;  // 5.92x: not
    // Layer 1: seven near-silent experts (as synth's weak ones that take most tokens): 1.3 is 26x
    // the layer's own 75th percentile, but typical for the model.
    for (uint32_t e = 0; e < 7; e++)
        s.layers.at(1).out_max[e] = 0.05;
    s.layers.at(1).out_max[7] = 1.3;
    // Layer 2: expert 3 never routed, no maximum.
    s.layers.at(2).count[3] = 0, s.layers.at(2).out_max[3] = 0;
    // Layer 6: a loud (late) layer, 15x the model's typical: compared to its own 75th percentile.
    for (uint32_t e = 0; e < 8; e++)
        s.layers.at(6).out_max[e] = e == 7 ? 24 : 20;

    const SuperExperts r = find_super_experts(s);
    ASSERT_TRUE(r.measured);
    EXPECT_DOUBLE_EQ(r.typical.at(0), 1.3);
    EXPECT_DOUBLE_EQ(r.typical.at(1), 1.3);
    EXPECT_DOUBLE_EQ(r.typical.at(6), 20.0);
    ASSERT_EQ(r.experts.size(), 2u) << r.experts.size();
    EXPECT_TRUE(r.contains(0, 7));
    EXPECT_TRUE(r.contains(3, 2));
    EXPECT_DOUBLE_EQ(r.experts[0].ratio, 10.0);
    EXPECT_EQ(r.experts[0].channel, 7u % 3);
    EXPECT_EQ(r.why(r.experts[0]), "max |output| 13 at channel 1: 10x the typical 1.3 (> 6x)");

    // A layer whose routed experts all write nothing: no scale, nothing found, nothing divided by 0.
    ExpertStats silent;
    LayerStats  L(3);
    L.count   = {1, 1, 0};
    L.out_max = {0, 0, 5};
    silent.layers.emplace(0, L);
    EXPECT_TRUE(find_super_experts(silent).experts.empty());

    // Stats without maxima: nothing can be found, and it says so.
    s.layers.at(0).out_max.clear();
    EXPECT_FALSE(find_super_experts(s).measured);
}

// The maxima of `o`'s model over 16 calibration samples: the planted super experts and what the
// rule finds; prints the extreme ratios (the numbers behind k_super_expert_ratio).
void expect_found_exactly_the_planted(const std::string & name, const synth::Options & o) {
    const std::string  model = test::synth_model(o);
    const GgufFile     f     = GgufFile::open(model);
    const auto         want  = planted(f, "super");
    const ExpertStats  stats = ExpertStats::load(test::profile(model, test::tmp_dir() + "/" + name + ".json", 16));
    const SuperExperts found = find_super_experts(stats);
    ASSERT_TRUE(found.measured) << name;
    std::set<std::pair<int, uint32_t>> got;
    for (const auto & s : found.experts)
        got.insert({s.layer, s.expert});
    EXPECT_EQ(got, want) << name << ": " << found.rule_text();
    double planted_min = INFINITY, other_max = 0;
    for (const auto & [il, L] : stats.layers) {
        for (uint32_t e = 0; e < L.n_expert(); e++) {
            const double ratio = L.out_max[e] / found.typical.at(il);
            if (want.count({il, e})) {
                planted_min = std::min(planted_min, ratio);
            } else if (L.count[e] > 0) {
                other_max = std::max(other_max, ratio);
            }
        }
    }
    std::printf("%-26s %zu planted, %zu found; max / typical: planted >= %.3g, others <= %.3g\n", name.c_str(),
                want.size(), got.size(), planted_min, other_max);
}

// Every preset's routing shape (experts, experts per token, groups, architecture) at a small
// width, and synth's default shape, with one super expert per MoE layer and with none. The
// 99.5th-percentile rule found 1 of the default shape's 8.
TEST(SuperExperts, PlantedAreFoundOnEveryPresetAndNoneWithoutPlants) {
    std::vector<std::pair<std::string, synth::Options>> shapes;
    synth::Options                                      dflt;  // qwen3moe, 8 layers of 16 experts
    dflt.n_embd = dflt.n_ff = 64;
    shapes.emplace_back("default", dflt);
    for (const auto & p : synth::presets()) {
        synth::Options o = p.options;
        o.n_layer        = test::fewest_layers(o.arch);
        o.n_embd = o.n_ff = 64;
        o.n_head = o.n_head_kv = o.head_dim = 0;  // the architecture's own at this width
        o.vocab                             = "";
        o.n_ctx_train                       = 4096;
        shapes.emplace_back(p.name, o);
    }
    for (auto & [name, o] : shapes) {
        o.n_super = 1;
        expect_found_exactly_the_planted(name + " --super 1", o);
        o.n_super = 0;
        expect_found_exactly_the_planted(name, o);
    }
}

}  // namespace
