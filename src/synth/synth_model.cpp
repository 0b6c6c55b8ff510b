#include "core/error.h"
#include "core/hash.h"
#include "core/stop_signal.h"
#include "core/text.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "synth/synth.h"
#include "synth/synth_arch.h"
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
// scaled up, so that channel of its output is a massive outlier, as in arXiv 2507.23279.
static constexpr float k_rare_anchor  = -12.0f;
static constexpr float k_super_anchor = -0.25f;
static constexpr float k_super_scale  = 50.0f;
static constexpr float k_weak_anchor  = 1.5f;
static constexpr float k_dead_scale   = 1e-3f;
static constexpr float k_weak_scale   = 0.05f;

namespace {

// splitmix64: a small, portable generator, so the same seed gives the same file everywhere.
struct Rng : SplitMix64 {
    float normal() {  // Box-Muller
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

enum class Planted { healthy, dead, rare, weak, super };

// The planted roles of one MoE layer's experts, and each super expert's outlier channel.
struct LayerRoles {
    std::vector<Planted>  role;
    std::vector<uint32_t> channel;  // per expert; meaningful for super experts
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

// Fills one outer-dimension slice (one expert, one row of a matrix, ...) of tensor `t`.
void fill_slice(const TensorSpec & t, Rng & rng, int64_t outer, std::vector<float> & v) {
    for (auto & x : v) {
        switch (t.init) {
            case Init::normal:
            case Init::embedding: x = t.scale * rng.normal(); break;
            case Init::ones: x = 1.0f; break;
            case Init::zeros: x = 0.0f; break;
            case Init::ssm_a: x = -float(0.1 + 0.9 * rng.uniform()); break;
            case Init::ssm_dt_bias: {
                const double dt = 0.01 + 0.09 * rng.uniform();  // softplus(bias) = dt
                x               = float(std::log(std::expm1(dt)));
                break;
            }
        }
    }
    if (t.init == Init::embedding) {
        v[0] = 1.0f;
    }
    if (t.reads_residual) {
        // Only routers read residual dimension 0: every other input ignores the anchor, so it
        // adds no token-independent component to attention or FFN outputs.
        for (size_t i = 0; i < v.size(); i += size_t(t.ne[0])) {
            v[i] = 0.0f;
        }
    }
    if (t.writes_residual && t.ne.size() == 1) {
        v[0] = 0.0f;  // a bias on the residual stream
    } else if (t.writes_residual) {
        // Keep residual dimension 0 constant: zero this tensor's contribution to it.
        const size_t n_dims  = t.ne.size();
        const bool   is_bias = !t.matrix;
        const size_t res_dim = is_bias ? 0 : 1;
        if (res_dim == n_dims - 1) {
            if (outer == 0) {
                std::fill(v.begin(), v.end(), 0.0f);
            }
        } else if (res_dim == 0) {
            for (size_t i = 0; i < v.size(); i += size_t(t.ne[0])) {
                v[i] = 0.0f;
            }
        } else {  // res_dim == 1 inside a 3-D slice
            const size_t row = size_t(t.ne[0]), plane = row * size_t(t.ne[1]);
            for (size_t p = 0; p < v.size(); p += plane) {
                std::fill(v.begin() + long(p), v.begin() + long(p + row), 0.0f);
            }
        }
    }
}

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
               : r == Planted::super ? k_super_anchor
                                     : 0.0f;
    } else if (ends_with(t.name, ".exp_probs_b.bias")) {
        // Selection bias (sigmoid-gated archs): when few experts have a real probability the
        // bias decides the last top-k slots, so rare experts also get a negative bias.
        if (r == Planted::rare) v[0] = -1.0f;
    } else if (ends_with(t.name, ".ffn_down_exps.weight") || ends_with(t.name, ".ffn_down_exps.bias")) {
        const float s = r == Planted::dead ? k_dead_scale : r == Planted::weak ? k_weak_scale : 1.0f;
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

// Converts `n` floats (whole rows of length row) to `type` into `out`.
void encode(ggml_type type, const float * src, int64_t n, int64_t row, std::vector<uint8_t> & out) {
    out.resize(ggml_row_size(type, row) * size_t(n / row));
    if (type == GGML_TYPE_F32) {
        std::memcpy(out.data(), src, size_t(n) * sizeof(float));
    } else if (type == GGML_TYPE_F16) {
        ggml_fp32_to_fp16_row(src, (ggml_fp16_t *) out.data(), n);
    } else {
        ggml_quantize_chunk(type, src, out.data(), 0, n / row, row, nullptr);
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
    return {r, channel};
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
