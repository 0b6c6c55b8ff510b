#include "core/error.h"
#include "core/hash.h"
#include "core/stop_signal.h"
#include "core/text.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "synth/synth.h"
#include "synth/synth_arch.h"
#include "synth/synth_fill.h"
#include "synth/synth_hparams.h"
#include "synth/synth_user_model.h"
#include "synth/synth_vocab.h"
#include "synth/vocab_import.h"

#include "ggml.h"
#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace reap::synth {

// Planted structure. Residual dimension 0 carries a constant (+1 in every token embedding; no
// layer writes into it and only routers read it), so after each RMS norm it is a large positive
// feature; a router row
// with a negative weight there is almost never selected (rare), a positive one almost always
// (weak). Dead experts have their down projection scaled to near zero. A super expert is routed
// less often than a healthy one and one row of its down projection (one output channel) is
// scaled up, so that channel of its output is a massive outlier, as in arXiv 2507.23279. Where
// the weak experts alone can fill every top-k slot (n_weak >= n_expert_used: every preset), they
// take nearly all tokens of the first layers and a super expert at the rare side of healthy is
// never routed: unseen, no statistic can find it. There its anchor sits below the weak experts'.
static constexpr float k_rare_anchor          = -12.0f;
static constexpr float k_super_anchor         = -0.25f;
static constexpr float k_super_anchor_crowded = 2.0f;
static constexpr float k_super_scale          = 50.0f;
static constexpr float k_weak_anchor          = 1.5f;
static constexpr float k_dead_scale           = 1e-3f;
static constexpr float k_weak_scale           = 0.05f;

namespace {

enum class Planted { healthy, dead, rare, weak, super };

// The planted roles of one MoE layer's experts, and each super expert's outlier channel.
struct LayerRoles {
    std::vector<Planted>  role;
    std::vector<uint32_t> channel;  // per expert; meaningful for super experts
    float                 super_anchor = k_super_anchor;
};

// Matmul weights take the requested type where the row length allows it; otherwise the next
// coarser fallback llama-quantize would use (Q4_K -> Q8_0 -> F16).
ggml_type storage_type(const TensorSpec & t, ggml_type want) {
    if (!t.matrix) {
        return GGML_TYPE_F32;
    }
    for (ggml_type ty : {want, GGML_TYPE_Q8_0, GGML_TYPE_F16}) {
        if (ty == GGML_TYPE_Q8_0 && want != GGML_TYPE_Q4_K && want != GGML_TYPE_Q8_0) {
            continue;
        }
        if (t.ne[0] % ggml_blck_size(ty) == 0) {
            return ty;
        }
    }
    return GGML_TYPE_F32;
}

// How much a planted expert's down projection is scaled (a super expert's outlier channel aside).
float output_scale(Planted r) { return r == Planted::dead ? k_dead_scale : r == Planted::weak ? k_weak_scale : 1.0f; }

void apply_planted(const TensorSpec & t, const LayerRoles & roles, int64_t expert, std::vector<float> & v) {
    const Planted r = roles.role[size_t(expert)];
    if (ends_with(t.name, ".ffn_gate_inp.weight")) {
        // Equal row norms: no healthy expert is favoured or starved by the draw alone.
        double ss = 0;
        for (size_t i = 1; i < v.size(); i++)
            ss += double(v[i]) * v[i];
        const float want = t.scale * std::sqrt(float(v.size() - 1));
        for (size_t i = 1; i < v.size(); i++)
            v[i] = float(v[i] * want / std::sqrt(ss));
        v[0] = r == Planted::rare    ? k_rare_anchor
               : r == Planted::weak  ? k_weak_anchor
               : r == Planted::super ? roles.super_anchor
                                     : 0.0f;
    } else if (ends_with(t.name, ".exp_probs_b.bias")) {
        // Selection bias (sigmoid-gated archs): when few experts have a real probability the
        // bias decides the last top-k slots, so rare experts also get a negative bias.
        if (r == Planted::rare) v[0] = -1.0f;
    } else if (ends_with(t.name, ".ffn_down_exps.weight") || ends_with(t.name, ".ffn_down_exps.bias")) {
        const float s = output_scale(r);
        for (auto & x : v) {
            x *= s;
        }
        if (r == Planted::super) {
            // Output channel c is row c of the expert's {n_ff, n_embd} slice (element c of a bias).
            const size_t row = t.ne.size() > 2 ? size_t(t.ne[0]) : 1, c = roles.channel[size_t(expert)];
            for (size_t i = c * row; i < (c + 1) * row && i < v.size(); i++)
                v[i] *= k_super_scale;
        }
    }
}

// The planted experts of one MoE layer: a seeded permutation cut into dead, rare, weak and
// healthy. Recorded in the file (the ground truth) and in `planted`.
LayerRoles plant_layer(const Options & o, int il, gguf_context * ctx, nlohmann::json & planted) {
    std::vector<int> perm(size_t(o.n_expert));
    for (int e = 0; e < o.n_expert; e++)
        perm[size_t(e)] = e;
    Rng rng{o.seed ^ fnv1a("planted." + std::to_string(il))};
    for (int e = o.n_expert - 1; e > 0; e--) {
        std::swap(perm[size_t(e)], perm[size_t(rng.next() % uint64_t(e + 1))]);
    }
    std::vector<Planted>  r(size_t(o.n_expert), Planted::healthy);
    std::vector<uint32_t> dead, rare, weak, super;
    int                   k = 0;
    for (int i = 0; i < o.n_dead; i++, k++)
        dead.push_back(uint32_t(perm[size_t(k)]));
    for (int i = 0; i < o.n_rare; i++, k++)
        rare.push_back(uint32_t(perm[size_t(k)]));
    for (int i = 0; i < o.n_weak; i++, k++)
        weak.push_back(uint32_t(perm[size_t(k)]));
    for (int i = 0; i < o.n_super; i++, k++)
        super.push_back(uint32_t(perm[size_t(k)]));
    for (auto * list : {&dead, &rare, &weak, &super})
        std::sort(list->begin(), list->end());
    for (auto e : dead)
        r[e] = Planted::dead;
    for (auto e : rare)
        r[e] = Planted::rare;
    for (auto e : weak)
        r[e] = Planted::weak;
    // Each super expert's outlier channel: any but residual dimension 0 (the routers' anchor).
    std::vector<uint32_t> channel(size_t(o.n_expert), 0), super_channel;
    for (auto e : super) {
        r[e]       = Planted::super;
        channel[e] = uint32_t(1 + rng.next() % uint64_t(o.n_embd - 1));
        super_channel.push_back(channel[e]);
    }
    gguf_set_arr_data(ctx, planted_key(il, "dead").c_str(), GGUF_TYPE_UINT32, dead.data(), dead.size());
    gguf_set_arr_data(ctx, planted_key(il, "rare").c_str(), GGUF_TYPE_UINT32, rare.data(), rare.size());
    gguf_set_arr_data(ctx, planted_key(il, "weak").c_str(), GGUF_TYPE_UINT32, weak.data(), weak.size());
    planted[std::to_string(il)] = {{"dead", dead}, {"rare", rare}, {"weak", weak}};
    if (!super.empty()) {
        gguf_set_arr_data(ctx, planted_key(il, "super").c_str(), GGUF_TYPE_UINT32, super.data(), super.size());
        gguf_set_arr_data(ctx, planted_key(il, "super_channel").c_str(), GGUF_TYPE_UINT32, super_channel.data(),
                          super_channel.size());
        planted[std::to_string(il)]["super"]         = super;
        planted[std::to_string(il)]["super_channel"] = super_channel;
    }
    return {r, channel, o.n_weak >= o.n_expert_used ? k_super_anchor_crowded : k_super_anchor};
}

// A large matrix (k_dictionary_min_values or more), slice by slice from RowDictionary rows picked
// by the tensor's generator; a planted expert's down projection from a dictionary scaled as
// apply_planted scales it, a super expert's outlier row drawn and encoded on its own.
void write_from_dictionaries(GgufFileWriter & out, const TensorSpec & t, ggml_type type, const Options & o,
                             const LayerRoles * roles) {
    const int64_t row = t.ne[0], outer = t.ne.back();
    int64_t       rows = 1;  // rows per slice
    for (size_t d = 1; d + 1 < t.ne.size(); d++)
        rows *= t.ne[d];
    std::map<float, RowDictionary> dicts;  // by output scale, made when first needed
    auto                           dict = [&](float scale) -> const RowDictionary & {
        auto it = dicts.find(scale);
        if (it == dicts.end())
            it = dicts.emplace(scale, RowDictionary(t, type, o.seed, k_dictionary_rows, scale)).first;
        return it->second;
    };
    Rng                  pick{o.seed ^ fnv1a(t.name)};
    const size_t         rb = ggml_row_size(type, row);
    std::vector<uint8_t> buf(rb * size_t(rows)), enc;
    std::vector<float>   outlier(static_cast<size_t>(row));
    for (int64_t e = 0; e < outer; e++) {
        const Planted         role = roles ? roles->role[size_t(e)] : Planted::healthy;
        const RowDictionary & d    = dict(output_scale(role));
        for (int64_t r = 0; r < rows; r++) {
            // The row writing residual dimension 0 is zero (fill_slice's rule): row 0 of every
            // expert's plane, or the whole first slice of a 2-D matrix.
            const bool zero = t.writes_residual && (t.ne.size() > 2 ? r == 0 : e == 0);
            if (role == Planted::super && uint64_t(r) == roles->channel[size_t(e)]) {
                Rng own{o.seed ^ fnv1a(t.name + "#outlier" + std::to_string(e))};
                for (auto & x : outlier)
                    x = t.scale * k_super_scale * own.normal();
                encode(type, outlier.data(), row, row, enc);
                std::memcpy(buf.data() + size_t(r) * rb, enc.data(), rb);
                continue;
            }
            std::memcpy(buf.data() + size_t(r) * rb, zero ? d.zero_row() : d.row(size_t(pick.next() % d.size())), rb);
        }
        out.write(buf.data(), buf.size());
    }
}

// Tensor `t`'s data, drawn from a generator seeded by the seed and its name, one outer-dimension
// slice at a time; planted experts altered. Returns its number of values.
uint64_t write_tensor_data(GgufFileWriter & out, const TensorSpec & t, ggml_type type, const Options & o,
                           const std::map<int, LayerRoles> & roles) {
    const int64_t outer = t.ne.back();
    int64_t       n     = 1;
    for (auto d : t.ne)
        n *= d;
    const int64_t per   = n / outer;
    const int64_t row   = t.ne.size() > 1 ? t.ne[0] : per;
    const auto    rit   = roles.find(tensor_layer(t.name));
    const bool    plant = rit != roles.end() && outer == o.n_expert &&
                       (ends_with(t.name, ".ffn_gate_inp.weight") || ends_with(t.name, ".ffn_down_exps.weight") ||
                        ends_with(t.name, ".ffn_down_exps.bias") || ends_with(t.name, ".exp_probs_b.bias"));
    if (n >= k_dictionary_min_values && t.matrix && (t.init == Init::normal || t.init == Init::embedding) &&
        t.ne.size() > 1) {
        write_from_dictionaries(out, t, type, o, plant ? &rit->second : nullptr);
        out.end_tensor();
        return uint64_t(n);
    }
    Rng                  rng{o.seed ^ fnv1a(t.name)};
    std::vector<float>   slice(static_cast<size_t>(per));
    std::vector<uint8_t> enc;
    if (t.ne.size() == 1) {
        // 1-D tensors are written whole: their "slices" are single values.
        slice.resize(size_t(n));
        fill_slice(t, rng, 0, slice);
        if (plant) {
            for (int64_t e = 0; e < n; e++) {
                std::vector<float> one = {slice[size_t(e)]};
                apply_planted(t, rit->second, e, one);
                slice[size_t(e)] = one[0];
            }
        }
        encode(type, slice.data(), n, n, enc);
        out.write(enc.data(), enc.size());
    } else {
        for (int64_t e = 0; e < outer; e++) {
            fill_slice(t, rng, e, slice);
            if (plant) apply_planted(t, rit->second, e, slice);
            encode(type, slice.data(), per, row, enc);
            out.write(enc.data(), enc.size());
        }
    }
    out.end_tensor();
    return uint64_t(n);
}

}  // namespace

nlohmann::json write_model(const Options & in, const std::string & path) {
    const Options o = resolve(in);

    GgufContextPtr ctx(gguf_init_empty());
    gguf_set_val_str(ctx.get(), "general.architecture", o.arch.c_str());
    gguf_set_val_str(ctx.get(), "general.name", ("reap-synth-" + o.arch).c_str());
    const uint32_t n_vocab = o.vocab.empty() ? add_vocab(ctx.get()) : import_vocab(ctx.get(), o.vocab);
    ArchSpec       spec;
    if (uses_hand_written_layout(o)) {
        spec = build_arch(o, n_vocab, ctx.get());
    } else {
        add_builder_hparams(ctx.get(), o, n_vocab);
        spec = discover_arch(ctx.get(), o.n_embd, o.n_layer);
        if (spec.moe_layers.empty()) {
            fail("synth: llama.cpp built '%s' without a router (no MoE layer); is it a MoE architecture?",
                 o.arch.c_str());
        }
    }

    std::map<int, LayerRoles> roles;
    nlohmann::json            planted = nlohmann::json::object();
    for (int il : spec.moe_layers) {
        roles[il] = plant_layer(o, il, ctx.get(), planted);
    }
    std::vector<uint32_t> moe_layers(spec.moe_layers.begin(), spec.moe_layers.end());
    gguf_set_arr_data(ctx.get(), "reap.synth.moe_layers", GGUF_TYPE_UINT32, moe_layers.data(), moe_layers.size());
    gguf_set_val_u64(ctx.get(), "reap.synth.seed", o.seed);
    gguf_set_val_str(ctx.get(), "reap.synth.weight_type", ggml_type_name(o.type));

    // Tensor descriptions first (metadata only), then the data, one slice at a time.
    GgmlContextPtr         meta = tensor_meta_context(spec.tensors.size());
    std::vector<ggml_type> types;
    for (const auto & t : spec.tensors) {
        const ggml_type ty = storage_type(t, o.type);
        ggml_tensor *   gt = ggml_new_tensor(meta.get(), ty, int(t.ne.size()), t.ne.data());
        ggml_set_name(gt, t.name.c_str());
        gguf_add_tensor(ctx.get(), gt);
        types.push_back(ty);
    }
    StopSignalGuard signals;  // Ctrl-C: the temporary goes, reap exits 130 (core/stop_signal.h)
    GgufFileWriter  out(path, ctx.get());
    uint64_t        n_params = 0;
    for (size_t i = 0; i < spec.tensors.size(); i++) {
        stop_point("writing the model (no output was written)");
        n_params += write_tensor_data(out, spec.tensors[i], types[i], o, roles);
    }
    out.commit();

    return {{"file", path},
            {"architecture", o.arch},
            {"n_layer", o.n_layer},
            {"n_embd", o.n_embd},
            {"n_ff", o.n_ff},
            {"n_expert", o.n_expert},
            {"n_expert_used", o.n_expert_used},
            {"n_vocab", n_vocab},
            {"vocab", o.vocab.empty() ? "built-in" : o.vocab},
            {"layout", uses_hand_written_layout(o) ? "hand-written" : "llama.cpp model builder"},
            {"weight_type", ggml_type_name(o.type)},
            {"seed", o.seed},
            {"n_params", n_params},
            {"n_tensors", spec.tensors.size()},
            {"moe_layers", moe_layers},
            {"planted", planted}};
}

}  // namespace reap::synth
