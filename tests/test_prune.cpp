// reap prune: byte-exact rewrites that llama.cpp loads, on every synthetic architecture.
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_pruner.h"
#include "gguf/moe_layout.h"
#include "moe/expert_budget.h"
#include "profile/profiler.h"
#include "prune/planner.h"
#include "support.h"
#include "support_models.h"

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace reap;
using nlohmann::json;
using test::bytes_of;

namespace {

synth::Options small(const std::string & arch, ggml_type type = GGML_TYPE_Q8_0) {
    synth::Options o;
    o.arch    = arch;
    o.type    = type;
    o.n_layer = test::fewest_layers(arch);
    return o;
}

std::string stats_for(const std::string & model, const std::string & dir) {
    return test::profile(model, dir + "/stats.json");
}

size_t gguf_scalar_size(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32:
        case GGUF_TYPE_INT32:
        case GGUF_TYPE_FLOAT32: return 4;
        default: return 8;
    }
}

bool exists(const std::string & p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// Every key of `a` is in `b` with the same type and value (keys starting with `skip` ignored).
void expect_same_kv(const GgufFile & a, const GgufFile & b, const std::string & skip) {
    const gguf_context *ca = a.meta(), *cb = b.meta();
    for (int64_t i = 0; i < gguf_get_n_kv(ca); i++) {
        const std::string key = gguf_get_key(ca, i);
        if (key.rfind(skip, 0) == 0) continue;
        const int64_t j = gguf_find_key(cb, key.c_str());
        ASSERT_GE(j, 0) << key;
        const auto type = gguf_get_kv_type(ca, i);
        ASSERT_EQ(type, gguf_get_kv_type(cb, j)) << key;
        if (type == GGUF_TYPE_STRING) {
            EXPECT_STREQ(gguf_get_val_str(ca, i), gguf_get_val_str(cb, j)) << key;
        } else if (type == GGUF_TYPE_ARRAY) {
            const auto at = gguf_get_arr_type(ca, i);
            ASSERT_EQ(at, gguf_get_arr_type(cb, j)) << key;
            ASSERT_EQ(gguf_get_arr_n(ca, i), gguf_get_arr_n(cb, j)) << key;
            for (size_t k = 0; k < gguf_get_arr_n(ca, i); k++) {
                if (at == GGUF_TYPE_STRING) {
                    ASSERT_STREQ(gguf_get_arr_str(ca, i, k), gguf_get_arr_str(cb, j, k)) << key;
                }
            }
            if (at != GGUF_TYPE_STRING) {
                EXPECT_EQ(std::memcmp(gguf_get_arr_data(ca, i), gguf_get_arr_data(cb, j),
                                      gguf_get_arr_n(ca, i) * gguf_scalar_size(at)),
                          0)
                    << key;
            }
        } else {
            EXPECT_EQ(std::memcmp(gguf_get_val_data(ca, i), gguf_get_val_data(cb, j), gguf_scalar_size(type)), 0)
                << key;
        }
    }
}

void expect_finite_run(const std::string & path) {
    const auto rows = test::decode_logits(path, "Pruned models must still run: 1 + 1 = 2.");
    ASSERT_GT(rows.size(), 3u);
    for (const auto & r : rows) {
        for (float v : r)
            ASSERT_TRUE(std::isfinite(v)) << path;
    }
}

class PruneArch : public ::testing::TestWithParam<std::tuple<std::string, ggml_type>> {};

TEST_P(PruneArch, KeepAllIsByteIdenticalAndHalfKeepsExactSlices) {
    const auto [arch, type]    = GetParam();
    const std::string model    = test::synth_model(small(arch, type));
    const std::string dir      = test::tmp_dir();
    const std::string stats    = stats_for(model, dir);
    const auto        all_path = dir + "/all.gguf", half_path = dir + "/half.gguf";
    const auto        r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "1.0,0.5", "-o",
                                          dir + "/{keep}.gguf", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::rename((dir + "/1.00.gguf").c_str(), all_path.c_str());
    std::rename((dir + "/0.50.gguf").c_str(), half_path.c_str());

    const GgufFile  in = GgufFile::open(model);
    const MoeLayout m  = analyze_moe(in);

    // Keep all: same keys (plus provenance) and every tensor byte for byte.
    const GgufFile all = GgufFile::open(all_path);
    expect_same_kv(in, all, "reap.prune.");
    ASSERT_EQ(all.tensors().size(), in.tensors().size());
    for (const auto & t : in.tensors()) {
        const auto * u = all.find_tensor(t.name);
        ASSERT_NE(u, nullptr) << t.name;
        ASSERT_EQ(u->nbytes, t.nbytes) << t.name;
        EXPECT_TRUE(bytes_of(in, t, 0, t.nbytes) == bytes_of(all, *u, 0, u->nbytes)) << t.name;
    }
    expect_finite_run(all_path);

    // Half: llama.cpp runs it; each kept expert's slices (weights, router rows, biases) are the
    // original expert's bytes; everything else is untouched.
    const GgufFile  half = GgufFile::open(half_path);
    const MoeLayout hm   = analyze_moe(half);
    const uint32_t  kept = kept_count_for_ratio(m.shape(), 0.5);
    EXPECT_EQ(hm.n_expert, kept);
    EXPECT_EQ(half.get_uint(arch + ".expert_count").value(), kept);
    expect_same_kv(in, half, arch + ".expert_count");
    test::expect_kept_slices(in, m, half, kept);
    expect_finite_run(half_path);
    const auto ins = test::run_reap({"inspect", "--json", half_path});
    ASSERT_EQ(ins.exit_code, 0) << ins.err;
    EXPECT_EQ(json::parse(ins.out)["n_expert"], kept);
}

INSTANTIATE_TEST_SUITE_P(AllArchs, PruneArch,
                         ::testing::Combine(::testing::ValuesIn(synth::architectures()),
                                            ::testing::Values(GGML_TYPE_F16, GGML_TYPE_Q4_K)),
                         [](const auto & param_info) {
                             std::string n =
                                 std::get<0>(param_info.param) + "_" + ggml_type_name(std::get<1>(param_info.param));
                             for (auto & c : n)
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             return n;
                         });

class RareRemoval : public ::testing::TestWithParam<std::string> {};

// Dropping experts the router never selects changes nothing on architectures that renormalise
// the selected weights: a check that router rows, selection biases and expert slices stay aligned
// (a misaligned row or slice moves logits by O(1)). One MoE layer: float noise from the smaller
// router matmul (16 vs 14 rows) is ~2e-6 there, but a second MoE layer amplifies it to 3e-4..6e-4.
TEST_P(RareRemoval, LeavesLogitsUnchanged) {
    synth::Options o        = small(GetParam(), GGML_TYPE_F32);
    o.n_layer               = GetParam() == "nemotron_h_moe" ? 4 : 1;  // nemotron: Mamba, MoE, Mamba, attention
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const GgufFile    in    = GgufFile::open(model);
    const MoeLayout   m     = analyze_moe(in);
    Plan              p;
    p.criterion = "planted-rare";
    p.n_expert  = m.n_expert;
    for (int il : m.moe_layer_indices()) {
        const auto rare = in.get_uint_array(synth::planted_key(il, "rare"));
        LayerPlan  lp;
        for (uint32_t e = 0; e < m.n_expert; e++) {
            (std::find(rare.begin(), rare.end(), e) == rare.end() ? lp.kept : lp.dropped).push_back(e);
        }
        lp.set_pruned_slots();
        p.layers[il] = lp;
    }
    p.keep_ratio = double(p.expert_count()) / m.n_expert;
    prune_model(in, m, {{p, dir + "/no-rare.gguf"}}, false);

    const std::string text = "Every token goes through the same experts as before, and the logits stay the same.";
    const auto        a = test::decode_logits(model, text), b = test::decode_logits(dir + "/no-rare.gguf", text);
    ASSERT_EQ(a.size(), b.size());
    double max_diff = 0;
    for (size_t i = 0; i < a.size(); i++) {
        for (size_t j = 0; j < a[i].size(); j++)
            max_diff = std::max(max_diff, double(std::fabs(a[i][j] - b[i][j])));
    }
    // 1e-4 of the logits' scale (~4 here): measured 2e-6 on qwen3moe/llama/gpt-oss, 1.1e-4 on
    // nemotron_h_moe, whose Mamba and attention layers after the MoE layer amplify float noise.
    double scale = 1.0;
    for (const auto & row : a)
        for (float v : row)
            scale = std::max(scale, double(std::fabs(v)));
    EXPECT_LT(max_diff, 1e-4 * scale);
}

INSTANTIATE_TEST_SUITE_P(Renormalising, RareRemoval,
                         ::testing::Values("qwen3moe", "llama", "gpt-oss", "nemotron_h_moe"),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             for (auto & c : n)
                                 if (!std::isalnum((unsigned char) c)) c = '_';
                             return n;
                         });

TEST(Prune, ExpertGroupsStayBalanced) {
    const std::string model = test::synth_model(small("deepseek2"));
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_for(model, dir);
    const GgufFile    in    = GgufFile::open(model);
    const MoeLayout   m     = analyze_moe(in);  // 16 experts in 4 groups
    const Plan        p     = make_plan(ExpertStats::load(stats), m.shape(), Criterion::reap, 8, 0);
    for (const auto & [il, lp] : p.layers) {
        std::vector<int> per(4, 0);
        for (auto e : lp.kept)
            per[e / 4]++;
        EXPECT_EQ(per, (std::vector<int>{2, 2, 2, 2})) << "layer " << il;
    }
    EXPECT_THROW(make_plan(ExpertStats::load(stats), m.shape(), Criterion::reap, 6, 0), Error);  // not a multiple of 4
    EXPECT_THROW(make_plan(ExpertStats::load(stats), m.shape(), Criterion::reap, 4, 0), Error);  // 1 per group
    const auto r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep", "6", "-o", dir + "/x.gguf"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("multiple of 4"), std::string::npos) << r.err;
    EXPECT_FALSE(exists(dir + "/x.gguf"));
}

TEST(Prune, CriteriaAndTies) {
    synth::Options o;  // 16 experts, 2 dead, 2 rare, 2 weak per layer
    o.n_layer               = 3;
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const ExpertStats s     = ExpertStats::load(stats_for(model, dir));
    const GgufFile    in    = GgufFile::open(model);
    const MoeLayout   m     = analyze_moe(in);
    const Plan        reap  = make_plan(s, m.shape(), Criterion::reap, 12, 0),
               freq         = make_plan(s, m.shape(), Criterion::frequency, 12, 0);
    for (int il : m.moe_layer_indices()) {
        const auto & rd = reap.layers.at(il).dropped;
        for (auto e : in.get_uint_array(synth::planted_key(il, "dead"))) {
            EXPECT_TRUE(std::count(rd.begin(), rd.end(), uint32_t(e))) << "REAP keeps dead expert " << e;
        }
        const auto & fd = freq.layers.at(il).dropped;
        for (auto e : in.get_uint_array(synth::planted_key(il, "rare"))) {
            EXPECT_TRUE(std::count(fd.begin(), fd.end(), uint32_t(e))) << "frequency keeps rare expert " << e;
        }
    }
    // random: reproducible with a seed, different across seeds
    const Plan r1  = make_plan(s, m.shape(), Criterion::random, 8, 1),
               r1b = make_plan(s, m.shape(), Criterion::random, 8, 1),
               r2  = make_plan(s, m.shape(), Criterion::random, 8, 2);
    EXPECT_EQ(r1.layers.at(0).kept, r1b.layers.at(0).kept);
    EXPECT_NE(r1.layers.at(0).kept, r2.layers.at(0).kept);

    // ties: equal scores -> lower count pruned first, then lower id
    ExpertStats t;
    LayerStats  L(4);
    L.total_tokens = 10;
    L.count        = {5, 5, 1, 5};  // reap sums all zero: every score ties at 0
    for (int il : m.moe_layer_indices())
        t.layers.emplace(il, L);
    synth::Options o4;
    o4.n_expert = 4, o4.n_expert_used = 1, o4.n_layer = 3, o4.n_dead = o4.n_rare = o4.n_weak = 0;
    const GgufFile  f4 = GgufFile::open(test::synth_model(o4));
    const MoeLayout m4 = analyze_moe(f4);
    const Plan      tp = make_plan(t, m4.shape(), Criterion::reap, 2, 0);
    EXPECT_EQ(tp.layers.at(0).dropped, (std::vector<uint32_t>{0, 2}));
}

TEST(Prune, SeveralRatiosOnePassEqualSeparateRunsAndPlansRoundTrip) {
    const std::string model = test::synth_model(small("gpt-oss"));
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_for(model, dir);
    ASSERT_EQ(test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.25,0.75", "-o",
                              dir + "/multi.gguf", "--no-progress"})
                  .exit_code,
              0);
    ASSERT_EQ(test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.75", "-o",
                              dir + "/single.gguf", "--no-progress", "--plan-out", dir + "/plan.json"})
                  .exit_code,
              0);
    EXPECT_TRUE(test::read_bytes(dir + "/multi-keep0.75.gguf") == test::read_bytes(dir + "/single.gguf"));
    EXPECT_TRUE(exists(dir + "/multi-keep0.25.gguf"));

    // dry run: the plan's output size is the real size; applying the saved plan gives the same file
    const auto dry = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.75", "--dry-run"});
    ASSERT_EQ(dry.exit_code, 0) << dry.err;
    const json plan = json::parse(dry.out);
    EXPECT_EQ(plan["output_size"].get<uint64_t>(), test::read_bytes(dir + "/single.gguf").size());
    EXPECT_EQ(plan["layers"]["0"]["kept"].size(), 12u);
    EXPECT_EQ(plan["layers"]["0"]["dropped_scores"].size(), 4u);
    ASSERT_EQ(test::run_reap(
                  {"prune", "-m", model, "--plan", dir + "/plan.json", "-o", dir + "/replayed.gguf", "--no-progress"})
                  .exit_code,
              0);
    EXPECT_TRUE(test::read_bytes(dir + "/replayed.gguf") == test::read_bytes(dir + "/single.gguf"));
}

TEST(Prune, Refusals) {
    const std::string model        = test::synth_model(small("qwen3moe"));
    const std::string dir          = test::tmp_dir();
    const std::string stats        = stats_for(model, dir);
    synth::Options    other        = small("qwen3moe");
    other.n_expert                 = 8;
    other.n_expert_used            = 2;
    const std::string other_model  = test::synth_model(other);
    synth::Options    deeper       = small("qwen3moe");
    deeper.n_layer                 = 3;
    const std::string deeper_model = test::synth_model(deeper);
    const std::string out          = dir + "/out.gguf";

    auto refuse = [&](std::vector<std::string> args, const std::string & why, const std::string & path) {
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(r.signal, 0);
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        EXPECT_FALSE(exists(path)) << "refused prune left " << path;
    };
    refuse({"prune", "-m", other_model, "--stats", stats, "--keep-ratio", "0.5", "-o", out},
           "statistics of another model", out);
    refuse({"prune", "-m", deeper_model, "--stats", stats, "--keep-ratio", "0.5", "-o", out},
           "statistics of another model", out);
    for (const char * ratio : {"0", "1.5"}) {  // usage errors (issue 21): exit 2
        const auto r = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", ratio, "-o", out});
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find("outside (0, 1]"), std::string::npos) << r.err;
        EXPECT_FALSE(exists(out));
    }
    refuse({"prune", "-m", model, "--stats", stats, "--keep", "2", "-o", out}, "below the 4 experts used per token",
           out);
    refuse({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o", dir + "/no/dir/x.gguf"},
           "cannot create output", dir + "/no/dir/x.gguf");
    const auto before = test::read_bytes(model);
    const auto same   = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "-o", model});
    EXPECT_EQ(same.exit_code, 1);
    EXPECT_NE(same.err.find("is also an input"), std::string::npos) << same.err;
    EXPECT_TRUE(test::read_bytes(model) == before);

    // A disk that fills up during the write (simulated with a file-size limit): an error, and
    // neither the output nor its temporary file is left behind.
    const std::string cmd = "ulimit -f 2048; exec '" + std::string(REAP_BIN) + "' prune -m '" + model + "' --stats '" +
                            stats + "' --keep-ratio 0.5 -o '" + out + "' --no-progress 2> '" + dir + "/full.err'";
    const int rc = std::system(("bash -c \"" + cmd + "\"").c_str());
    EXPECT_NE(rc, 0);
    const auto err = test::read_bytes(dir + "/full.err");
    EXPECT_NE(std::string(err.begin(), err.end()).find("write failed"), std::string::npos)
        << std::string(err.begin(), err.end());
    EXPECT_FALSE(exists(out));
    for (const auto & e : std::filesystem::directory_iterator(dir)) {
        EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
    }
}

// Adds tensors to a copy of `src` (used to make files with unusual per-expert tensors).
void add_tensors(const std::string & src, const std::string & dst,
                 const std::vector<std::pair<std::string, std::vector<int32_t>>> & extra, int64_t ne0) {
    ggml_context * data = nullptr;
    gguf_context * in   = gguf_init_from_file(src.c_str(), {false, &data});
    ASSERT_NE(in, nullptr);
    // The loaded context's tensor infos carry no data: rebuild from the data context's tensors.
    gguf_context * ctx = gguf_init_empty();
    gguf_set_kv(ctx, in);
    for (int64_t i = 0; i < gguf_get_n_tensors(in); i++) {
        gguf_add_tensor(ctx, ggml_get_tensor(data, gguf_get_tensor_name(in, i)));
    }
    gguf_free(in);
    ggml_init_params ip{ggml_tensor_overhead() * 8 + (1 << 20), nullptr, false};
    ggml_context *   g = ggml_init(ip);
    for (const auto & [name, values] : extra) {
        ggml_tensor * t = ggml_new_tensor_2d(g, GGML_TYPE_I32, ne0, int64_t(values.size()) / ne0);
        std::memcpy(t->data, values.data(), values.size() * 4);
        ggml_set_name(t, name.c_str());
        gguf_add_tensor(ctx, t);
    }
    ASSERT_TRUE(gguf_write_to_file(ctx, dst.c_str(), false));
    gguf_free(ctx);
    ggml_free(data);
    ggml_free(g);
}

TEST(Prune, ExpertIdTablesAreRenumberedOrRefused) {
    synth::Options    o     = small("qwen3moe");
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const GgufFile    base  = GgufFile::open(model);
    const MoeLayout   bm    = analyze_moe(base);
    Plan              p;
    p.criterion = "test";
    p.n_expert  = 16;
    for (int il : bm.moe_layer_indices()) {
        LayerPlan lp;
        for (uint32_t e = 0; e < 16; e++)
            (e % 2 ? lp.kept : lp.dropped).push_back(e);  // keep odd ids
        lp.set_pruned_slots();
        p.layers[il] = lp;
    }
    // token -> expert ids table using only kept (odd) experts: renumbered 1->0, 3->1, 15->7
    add_tensors(model, dir + "/hash.gguf", {{"blk.0.ffn_gate_tid2eid.weight", {1, 3, 15, 5, 7, 9}}}, 2);
    const GgufFile  h  = GgufFile::open(dir + "/hash.gguf");
    const MoeLayout hm = analyze_moe(h);
    prune_model(h, hm, {{p, dir + "/hash-pruned.gguf"}}, false);
    const GgufFile out = GgufFile::open(dir + "/hash-pruned.gguf");
    const auto *   t   = out.find_tensor("blk.0.ffn_gate_tid2eid.weight");
    ASSERT_NE(t, nullptr);
    std::vector<int32_t> ids(6);
    out.read(*t, 0, ids.data(), 24);
    EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 7, 2, 3, 4}));

    // a table that routes to a dropped expert: refused, no output
    add_tensors(model, dir + "/hash2.gguf", {{"blk.0.ffn_gate_tid2eid.weight", {1, 2}}}, 2);
    const GgufFile h2 = GgufFile::open(dir + "/hash2.gguf");
    EXPECT_THROW(prune_model(h2, analyze_moe(h2), {{p, dir + "/hash2-pruned.gguf"}}, false), Error);
    EXPECT_FALSE(exists(dir + "/hash2-pruned.gguf"));

    // an unknown per-expert tensor: refused rather than copied whole
    add_tensors(model, dir + "/odd.gguf", {{"blk.0.ffn_mystery_exps.weight", std::vector<int32_t>(32, 0)}}, 2);
    const GgufFile h3 = GgufFile::open(dir + "/odd.gguf");
    try {
        prune_model(h3, analyze_moe(h3), {{p, dir + "/odd-pruned.gguf"}}, false);
        ADD_FAILURE() << "unknown expert tensor accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("ffn_mystery_exps"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(exists(dir + "/odd-pruned.gguf"));
}

TEST(Prune, SplitInputEqualsWholeInput) {
    synth::Options    o     = small("llama");
    const std::string model = test::synth_model(o);
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_for(model, dir);
    const std::string first = test::write_splits(model, dir + "/split", 3);

    ASSERT_EQ(
        test::run_reap({"prune", "-m", model, "--stats", stats, "--keep", "6", "-o", dir + "/a.gguf", "--no-progress"})
            .exit_code,
        0);
    const auto r =
        test::run_reap({"prune", "-m", first, "--stats", stats, "--keep", "6", "-o", dir + "/b.gguf", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const GgufFile a = GgufFile::open(dir + "/a.gguf"), b = GgufFile::open(dir + "/b.gguf");
    EXPECT_FALSE(b.has_key("split.count"));
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (const auto & t : a.tensors()) {
        const auto * u = b.find_tensor(t.name);
        ASSERT_NE(u, nullptr);
        EXPECT_TRUE(bytes_of(a, t, 0, t.nbytes) == bytes_of(b, *u, 0, u->nbytes)) << t.name;
    }
    expect_finite_run(dir + "/b.gguf");
}

}  // namespace

namespace {

// --split-max-size: gguf-split-style files that read (and load in llama.cpp) as the same model.
TEST(Prune, SplitOutputReadsAsTheSameModel) {
    const std::string model = test::synth_model(small("qwen3moe"));
    const std::string dir   = test::tmp_dir();
    const std::string stats = stats_for(model, dir);
    ASSERT_EQ(test::run_reap(
                  {"prune", "-m", model, "--stats", stats, "--keep", "8", "-o", dir + "/one.gguf", "--no-progress"})
                  .exit_code,
              0);
    const auto dry = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep", "8", "-o", dir + "/parts.gguf",
                                     "--split-max-size", "1M", "--dry-run"});
    ASSERT_EQ(dry.exit_code, 0) << dry.err;
    const json plan = json::parse(dry.out);
    const auto r    = test::run_reap({"prune", "-m", model, "--stats", stats, "--keep", "8", "-o", dir + "/parts.gguf",
                                      "--split-max-size", "1M", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto names = plan["output_files"].get<std::vector<std::string>>();
    ASSERT_GT(names.size(), 2u);
    EXPECT_NE(names[0].find("parts-00001-of-"), std::string::npos) << names[0];
    uint64_t total = 0;
    for (const auto & n : names)
        total += test::read_bytes(n).size();
    EXPECT_EQ(total, plan["output_size"].get<uint64_t>());

    const GgufFile a = GgufFile::open(dir + "/one.gguf"), b = GgufFile::open(names[1]);
    EXPECT_EQ(b.split_paths().size(), names.size());
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (const auto & t : a.tensors()) {
        const auto * u = b.find_tensor(t.name);
        ASSERT_NE(u, nullptr) << t.name;
        EXPECT_TRUE(bytes_of(a, t, 0, t.nbytes) == bytes_of(b, *u, 0, u->nbytes)) << t.name;
    }
    const auto la = test::decode_logits(dir + "/one.gguf", "split or not"),
               lb = test::decode_logits(names[0], "split or not");
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); i++)
        EXPECT_TRUE(la[i] == lb[i]);
    EXPECT_EQ(test::run_reap({"prune", "-m", model, "--stats", stats, "--keep", "8", "-o", dir + "/x.gguf",
                              "--split-max-size", "12Q"})
                  .exit_code,
              2);  // a bad option value: a usage error
}

// Next-token-prediction (MTP) blocks are MoE layers without statistics: they take the ids
// chosen for the last regular MoE layer, and stats files are not expected to cover them.
TEST(Planner, NextTokenPredictionLayersKeepTheLastRegularLayersIds) {
    MoeShape m;  // layer 0 dense, 1-2 MoE, 3 an MTP block
    m.arch          = "deepseek2";
    m.n_layer       = 4;
    m.n_expert      = 8;
    m.n_expert_used = 2;
    m.moe_layers    = {1, 2};
    m.nextn_layers  = {3};
    ExpertStats s;
    for (int il : {1, 2}) {
        LayerStats L(8);
        L.total_tokens = 100;
        for (uint32_t e = 0; e < 8; e++)
            L.add(e, 0.5, 0.5, double(il == 1 ? e : 8 - e), 0.5 * double(il == 1 ? e : 8 - e));
        s.layers.emplace(il, L);
    }
    check_stats_match(s, m, "s.json");  // layer 3 (MTP) needs no statistics
    const Plan p = make_plan(s, m, Criterion::reap, 4, 0);
    EXPECT_EQ(p.layers.at(1).kept, (std::vector<uint32_t>{4, 5, 6, 7}));
    EXPECT_EQ(p.layers.at(2).kept, (std::vector<uint32_t>{0, 1, 2, 3}));
    EXPECT_EQ(p.layers.at(3).kept, p.layers.at(2).kept);
    EXPECT_TRUE(p.layers.at(3).copied_from_layer);
    check_plan(p, m, "plan");
    // and a plan missing the MTP layer is refused
    Plan q = p;
    q.layers.erase(3);
    EXPECT_THROW(check_plan(q, m, "plan"), Error);
}

}  // namespace

namespace {

// GroveMoE: experts 2c and 2c+1 share adjugate expert c. Each kept adjugate group keeps the same
// number of its experts (whole groups first), the others go, and the kept count is rounded to
// one such split.
TEST(Planner, GroveMoeKeepsWholeAdjugateGroupsOrTheSameNumberInEach) {
    MoeShape m;
    m.arch              = "grovemoe";
    m.n_layer           = 1;
    m.n_expert          = 8;
    m.n_expert_used     = 2;
    m.experts_per_chunk = 2;  // 4 adjugate experts
    m.moe_layers        = {0};
    EXPECT_EQ(kept_per_chunk(m, 8), 2u);
    EXPECT_EQ(kept_per_chunk(m, 4), 2u);  // two whole groups
    EXPECT_EQ(kept_per_chunk(m, 3), 1u);  // one expert in each of three groups
    EXPECT_EQ(kept_per_chunk(m, 5), 0u);  // 5 is odd and more than 4 groups of one
    EXPECT_EQ(kept_per_chunk(m, 2), 1u);  // not one whole group: fewer adjugates than 2 experts per token
    EXPECT_NE(kept_count_problem(m, 5).find("experts_per_group"), std::string::npos);
    EXPECT_EQ(round_kept_count(m, 5.0 / 8), 4u);  // the nearest valid count, fewer on a tie
    EXPECT_EQ(round_kept_count(m, 7.0 / 8), 6u);  // 7 fits nothing; 6 and 8 do

    ExpertStats s;
    LayerStats  L(8);
    L.total_tokens        = 100;
    const double score[8] = {1, 9, 8, 7, 2, 3, 6, 0.5};  // groups: 10, 15, 5, 6.5
    for (uint32_t e = 0; e < 8; e++)
        L.add(e, 0.5, 0.5, 2 * score[e], score[e]);
    s.layers.emplace(0, L);
    const Plan whole = make_plan(s, m, Criterion::reap, 4, 0);
    EXPECT_EQ(whole.layers.at(0).kept, (std::vector<uint32_t>{0, 1, 2, 3}));  // groups 0 and 1
    check_plan(whole, m, "plan");
    const Plan one_each = make_plan(s, m, Criterion::reap, 3, 0);
    EXPECT_EQ(one_each.layers.at(0).kept, (std::vector<uint32_t>{1, 2, 6}));  // the best of groups 0, 1, 3
    check_plan(one_each, m, "plan");
    Plan uneven              = whole;  // group 0 whole, one of group 1, one of group 3: no single group size
    uneven.layers.at(0).kept = {0, 1, 2, 6};
    uneven.layers.at(0).set_pruned_slots();
    EXPECT_THROW(check_plan(uneven, m, "plan"), Error);
}

// The pruned GroveMoE file: its adjugate tensors keep the groups of the kept experts, the group
// size is rewritten, and llama.cpp loads and runs it.
TEST(Prune, GroveMoeAdjugateExpertsFollowTheirGroups) {
    synth::Options o;
    o.arch                  = "grovemoe";
    o.llama_builder         = true;
    o.n_layer               = 2;
    o.n_ff                  = 64;
    o.experts_per_group     = 2;
    const std::string dir   = test::tmp_dir();
    const std::string model = dir + "/grove.gguf";
    synth::write_model(o, model);
    const GgufFile  in = GgufFile::open(model);
    const MoeLayout m  = analyze_moe(in);
    ASSERT_EQ(m.experts_per_chunk, 2u);
    const std::string stats = stats_for(model, dir);
    // 16 experts, 4 per token: 8 keeps 4 whole groups; 6 in 3 groups would be fewer adjugates than
    // experts per token (llama.cpp reads past them), so 6 groups keep one expert each.
    for (uint32_t kept : {8u, 6u}) {
        const Plan        p   = make_plan(ExpertStats::load(stats), m.shape(), Criterion::reap, kept, 0);
        const std::string out = dir + "/keep" + std::to_string(kept) + ".gguf";
        prune_model(in, m, {{p, out}}, false);
        const GgufFile pruned = GgufFile::open(out);
        EXPECT_EQ(pruned.get_uint("grovemoe.experts_per_group"), kept == 8 ? 2u : 1u);
        const MoeLayout pm = analyze_moe(pruned);
        EXPECT_EQ(pm.n_expert, kept);
        EXPECT_EQ(pm.shape().n_chunk(), kept == 8 ? 4u : 6u);
        test::expect_kept_slices(in, m, pruned, kept);
        EXPECT_EQ(pruned.file_size(), pruned_file_size(in, m, p));
        EXPECT_GT(test::decode_logits(out, "int main() { return 0; }", 1).size(), 3u);
    }
}

}  // namespace
