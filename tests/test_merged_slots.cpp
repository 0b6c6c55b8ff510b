// Computed (merged) slots written by both formats (gguf/gguf_slot_merge.h, hf/hf_slot_merge.h):
// a merged slot is the documented arithmetic on its sources' dequantized weights within one
// quantization step, llama.cpp runs the merged file, a plan of single-source slots still copies
// bytes, and the HF writer keeps dtypes and refuses what it cannot compute.
#include "core/error.h"
#include "core/fs_util.h"
#include "core/tensor_codec.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_pruner.h"
#include "gguf/moe_layout.h"
#include "hf/hf_checkpoint.h"
#include "hf/hf_config.h"
#include "hf/hf_layout.h"
#include "hf/hf_pruner.h"
#include "plan/slot_merge.h"
#include "support.h"
#include "support_models.h"
#include "synth/synth_hf.h"

#include "ggml.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

synth::Options small(ggml_type type) {
    synth::Options o;
    o.arch    = "qwen3moe";
    o.type    = type;
    o.n_layer = test::fewest_layers(o.arch);
    return o;
}

// In every MoE layer, expert pairs (2i, 2i+1) merged into slot i: sources {{2i, 0.6}, {2i+1, 0.4}}.
// `single`: the same slots with their centroids alone (a pruning plan, with the merge record).
Plan pair_plan(const MoeShape & s, bool single = false) {
    Plan p;
    p.criterion  = "test";
    p.n_expert   = s.n_expert;
    p.keep_ratio = 0.5;
    p.merge      = {"test", "weights", 2};
    for (int il : s.all_moe_layers()) {
        LayerPlan lp;
        for (uint32_t i = 0; i < s.n_expert / 2; i++) {
            lp.kept.push_back(2 * i);
            lp.dropped.push_back(2 * i + 1);
            Slot slot;
            slot.sources = single ? std::vector<SlotSource>{{2 * i, 1.0}}
                                  : std::vector<SlotSource>{{2 * i, 0.6}, {2 * i + 1, 0.4}};
            lp.slots.push_back(slot);
        }
        p.layers[il] = lp;
    }
    return p;
}

std::vector<float> gguf_slice(const GgufFile & f, const TensorInfo & t, uint32_t e) {
    const uint64_t slice = t.nbytes / uint64_t(t.ne[t.n_dims - 1]);
    const auto     b     = test::bytes_of(f, t, uint64_t(e) * slice, slice);
    int64_t        n     = 1;
    for (int d = 0; d + 1 < t.n_dims; d++)
        n *= t.ne[d];
    std::vector<float> x(static_cast<size_t>(n));
    dequantize(t.type, b.data(), x.data(), n);
    return x;
}

}  // namespace

class MergedGguf : public ::testing::TestWithParam<ggml_type> {};

// Each merged slot's gate, up and down: 0.6 · centroid + 0.4 · member with the member's neurons
// permuted onto the centroid's (align_neurons), within one quantization step of the type; router
// rows are the centroid's bytes; llama.cpp decodes the file to finite logits.
TEST_P(MergedGguf, SlotsAreTheAlignedWeightedSumWithinOneQuantizationStep) {
    const ggml_type   type  = GetParam();
    const std::string model = test::synth_model(small(type)), dir = test::tmp_dir(), out = dir + "/merged.gguf";
    const GgufFile    in   = GgufFile::open(model);
    const MoeLayout   ml   = analyze_moe(in);
    const Plan        plan = pair_plan(ml.shape());
    prune_model(in, ml, {{plan, out, 0}}, false);
    EXPECT_EQ(test::read_bytes(out).size(), pruned_file_size(in, ml, plan));
    const GgufFile o = GgufFile::open(out);
    // the largest error of a slice relative to its bound, over every slice
    double worst = 0;
    for (const auto & [il, lp] : plan.layers) {
        const std::string blk  = "blk." + std::to_string(il) + ".";
        const auto *      gate = in.find_tensor(blk + "ffn_gate_exps.weight");
        const auto *      up   = in.find_tensor(blk + "ffn_up_exps.weight");
        const auto *      down = in.find_tensor(blk + "ffn_down_exps.weight");
        ASSERT_TRUE(gate && up && down);
        const int64_t n_ff = down->ne[0], n_embd = down->ne[1];
        for (uint32_t i = 0; i < lp.slot_count(); i++) {
            const uint32_t a = 2 * i, b = 2 * i + 1;
            const auto     ga = gguf_slice(in, *gate, a), ua = gguf_slice(in, *up, a), da = gguf_slice(in, *down, a);
            const auto     gb = gguf_slice(in, *gate, b), ub = gguf_slice(in, *up, b), db = gguf_slice(in, *down, b);
            const std::vector<uint32_t> p =
                align_neurons({ga.data(), ua.data(), da.data()}, {gb.data(), ub.data(), db.data()}, n_ff, n_embd);
            for (const TensorInfo * t : {gate, up, down}) {
                const bool         is_down = t == down;
                const auto &       xa      = is_down ? da : t == gate ? ga : ua;
                const auto &       xb      = is_down ? db : t == gate ? gb : ub;
                std::vector<float> want(xa.size());
                float              amax = 0;
                for (int64_t r = 0; r < (is_down ? n_embd : n_ff); r++) {
                    for (int64_t c = 0; c < (is_down ? n_ff : n_embd); c++) {
                        const size_t k  = size_t(is_down ? r * n_ff + c : r * n_embd + c);
                        const size_t kb = size_t(is_down ? r * n_ff + p[size_t(c)] : p[size_t(r)] * n_embd + c);
                        want[k]         = 0.6f * xa[k] + 0.4f * xb[kb];
                        amax            = std::max(amax, std::fabs(want[k]));
                    }
                }
                const auto   got   = gguf_slice(o, *o.find_tensor(t->name), i);
                const double bound = type == GGML_TYPE_Q8_0   ? amax / 127 * 1.01
                                     : type == GGML_TYPE_Q4_K ? amax / 7
                                                              : amax / 1024 + 1e-7;
                double       err   = 0;
                for (size_t k = 0; k < want.size(); k++)
                    err = std::max(err, double(std::fabs(got[k] - want[k])));
                ASSERT_LE(err, bound) << t->name << " slot " << i;
                worst = std::max(worst, err / bound);
            }
        }
        // the router row of slot i is the centroid's
        const auto * router  = in.find_tensor(blk + "ffn_gate_inp.weight");
        const auto * orouter = o.find_tensor(blk + "ffn_gate_inp.weight");
        ASSERT_TRUE(router && orouter);
        const uint64_t row = router->nbytes / uint64_t(router->ne[1]);
        for (uint32_t i = 0; i < lp.slot_count(); i++)
            EXPECT_EQ(test::bytes_of(o, *orouter, i * row, row), test::bytes_of(in, *router, 2 * i * row, row));
    }
    std::printf("%s: largest error / bound over all merged slices: %.3f\n", ggml_type_name(type), worst);
    for (const auto & row : test::decode_logits(out, "The quick brown fox jumps over the lazy dog"))
        for (float v : row)
            ASSERT_TRUE(std::isfinite(v));
}

INSTANTIATE_TEST_SUITE_P(Types, MergedGguf, ::testing::Values(GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_F16),
                         [](const auto & param_info) { return std::string(ggml_type_name(param_info.param)); });

// A plan whose slots are all single (even with a merge record) copies bytes as pruning does: the
// same tensors, byte for byte, as the pruning plan's file (the metadata differs only by the merge
// record, gguf/gguf_pruning_record.h), and every kept slice the input's bytes.
TEST(MergedGguf, SingleSourceSlotsAreByteCopies) {
    const std::string model = test::synth_model(small(GGML_TYPE_Q4_K)), dir = test::tmp_dir();
    const GgufFile    in      = GgufFile::open(model);
    const MoeLayout   ml      = analyze_moe(in);
    Plan              pruning = pair_plan(ml.shape(), true), single = pruning;
    pruning.merge = {};
    prune_model(in, ml, {{pruning, dir + "/pruned.gguf", 0}, {single, dir + "/single.gguf", 0}}, false);
    const GgufFile a = GgufFile::open(dir + "/pruned.gguf"), b = GgufFile::open(dir + "/single.gguf");
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (size_t i = 0; i < a.tensors().size(); i++) {
        const TensorInfo & ta = a.tensors()[i];
        const TensorInfo & tb = b.tensors()[i];
        ASSERT_EQ(ta.name, tb.name);
        EXPECT_EQ(test::bytes_of(a, ta, 0, ta.nbytes), test::bytes_of(b, tb, 0, tb.nbytes)) << ta.name;
    }
    test::expect_kept_slices(in, ml, GgufFile::open(dir + "/single.gguf"), ml.n_expert / 2);
}

namespace {

std::vector<float> hf_values(const HfCheckpoint & c, const std::string & name) {
    const HfTensor * t = c.find(name);
    EXPECT_NE(t, nullptr) << name;
    if (t == nullptr) return {};
    std::vector<uint8_t> b(t->t->nbytes);
    c.shards[t->shard].read(*t->t, 0, b.data(), b.size());
    const ggml_type    type = ggml_type_of_dtype(t->t->dtype);
    std::vector<float> x(b.size() / ggml_type_size(type));
    dequantize(type, b.data(), x.data(), int64_t(x.size()));
    return x;
}

}  // namespace

// The HF route: a merged BF16 per-expert folder holds the aligned weighted sums (BF16 rounding
// apart), in BF16, with the expert count lowered.
TEST(MergedHf, Bf16SlotsAreTheAlignedWeightedSum) {
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small(GGML_TYPE_Q8_0));
    synth::write_hf(gguf, dir + "/hf", {synth::HfExperts::per_expert, 0});
    const HfCheckpoint c    = HfCheckpoint::open(dir + "/hf");
    const HfLayout     hl   = analyze_hf(c);
    const Plan         plan = pair_plan(hl.shape);
    prune_hf(c, hl, {{plan, dir + "/out", 0}}, false);
    const HfCheckpoint o = HfCheckpoint::open(dir + "/out");
    EXPECT_EQ(read_moe_config(read_json_file(dir + "/out/config.json", "config"), "config.json").n_expert,
              plan.expert_count());
    for (const auto & l : hl.layers) {
        const std::string e = l.block + ".experts.";
        for (uint32_t i = 0; i < plan.expert_count(); i++) {
            const std::string a = e + std::to_string(2 * i) + ".", b = e + std::to_string(2 * i + 1) + ".";
            const auto        ga = hf_values(c, a + "gate_proj.weight"), ua = hf_values(c, a + "up_proj.weight"),
                       da = hf_values(c, a + "down_proj.weight");
            const auto gb = hf_values(c, b + "gate_proj.weight"), ub = hf_values(c, b + "up_proj.weight"),
                       db        = hf_values(c, b + "down_proj.weight");
            const auto *  dt     = c.find(a + "down_proj.weight")->t;
            const int64_t n_embd = int64_t(dt->shape[0]), n_ff = int64_t(dt->shape[1]);
            const auto    p =
                align_neurons({ga.data(), ua.data(), da.data()}, {gb.data(), ub.data(), db.data()}, n_ff, n_embd);
            const std::string s = e + std::to_string(i) + ".";
            for (const char * proj : {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}) {
                const bool   is_down = std::strcmp(proj, "down_proj.weight") == 0;
                const auto & xa      = is_down ? da : proj[0] == 'g' ? ga : ua;
                const auto & xb      = is_down ? db : proj[0] == 'g' ? gb : ub;
                const auto   got     = hf_values(o, s + proj);
                ASSERT_EQ(o.find(s + proj)->t->dtype, "BF16");
                ASSERT_EQ(got.size(), xa.size());
                for (int64_t r = 0; r < (is_down ? n_embd : n_ff); r++) {
                    for (int64_t col = 0; col < (is_down ? n_ff : n_embd); col++) {
                        const size_t k  = size_t(is_down ? r * n_ff + col : r * n_embd + col);
                        const size_t kb = size_t(is_down ? r * n_ff + p[size_t(col)] : p[size_t(r)] * n_embd + col);
                        const float  w  = 0.6f * xa[k] + 0.4f * xb[kb];
                        ASSERT_NEAR(got[k], w, std::fabs(w) / 256 + 1e-30) << s << proj << " [" << k << "]";
                    }
                }
            }
        }
    }
}

namespace {

// Rewrites the safetensors file `path` with tensor `name` declared as `dtype` of `shape` (the
// same bytes): a checkpoint the synthetic export cannot make.
void redeclare(const std::string & path, const std::string & name, const std::string & dtype,
               const std::vector<uint64_t> & shape) {
    std::vector<uint8_t> b = test::read_bytes(path);
    uint64_t             n = 0;
    std::memcpy(&n, b.data(), 8);
    json h           = json::parse(std::string(b.begin() + 8, b.begin() + 8 + long(n)));
    h[name]["dtype"] = dtype;
    h[name]["shape"] = shape;
    std::string text = h.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');
    const uint64_t       m = text.size();
    std::vector<uint8_t> out(8);
    std::memcpy(out.data(), &m, 8);
    out.insert(out.end(), text.begin(), text.end());
    out.insert(out.end(), b.begin() + 8 + long(n), b.end());
    test::write_bytes(path, out.data(), out.size());
}

}  // namespace

// FP8 (any dtype but F32/F16/BF16) and fused expert tensors in a computed slot are refused,
// naming the tensor, before any folder is written.
TEST(MergedHf, UnsupportedTensorsAreRefused) {
    const std::string dir = test::tmp_dir(), gguf = test::synth_model(small(GGML_TYPE_Q8_0));
    synth::write_hf(gguf, dir + "/fp8", {synth::HfExperts::per_expert, 0});
    const HfCheckpoint c0     = HfCheckpoint::open(dir + "/fp8");
    const HfLayout     l0     = analyze_hf(c0);
    const std::string  victim = l0.layers.front().block + ".experts.1.up_proj.weight";
    const StTensor &   vt     = *c0.find(victim)->t;
    redeclare(dir + "/fp8/" + c0.shard_names[0], victim, "F8_E4M3", {vt.shape[0], vt.shape[1] * 2});
    const HfCheckpoint c  = HfCheckpoint::open(dir + "/fp8");
    const HfLayout     hl = analyze_hf(c);
    try {
        prune_hf(c, hl, {{pair_plan(hl.shape), dir + "/out", 0}}, false);
        ADD_FAILURE() << "an FP8 tensor in a merged slot was accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("F8_E4M3"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/out"));

    synth::write_hf(gguf, dir + "/fused", {synth::HfExperts::fused, 0});
    const HfCheckpoint f  = HfCheckpoint::open(dir + "/fused");
    const HfLayout     fl = analyze_hf(f);
    EXPECT_THROW(prune_hf(f, fl, {{pair_plan(fl.shape), dir + "/out2", 0}}, false), Error);
    EXPECT_FALSE(std::filesystem::exists(dir + "/out2"));
    // the same folder pruned (single-source slots) is fine
    prune_hf(f, fl, {{pair_plan(fl.shape, true), dir + "/out3", 0}}, false);
    EXPECT_TRUE(std::filesystem::exists(dir + "/out3/config.json"));
}
