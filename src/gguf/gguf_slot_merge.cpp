#include "gguf/gguf_slot_merge.h"

#include "core/error.h"
#include "core/tensor_codec.h"

#include "ggml.h"

#include <algorithm>

namespace reap {

namespace {

// What a tensor of the expert FFN is to the merge: the weight's base name and the part after it.
struct FfnPart {
    std::string base;  // "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps"
    std::string kind;  // "weight", "bias", "scale", ...
};

FfnPart ffn_part(const ExpertTensor & e) {
    const size_t dot = e.suffix.find('.');
    return {e.suffix.substr(0, dot), dot == std::string::npos ? "" : e.suffix.substr(dot + 1)};
}

// The axis of the neurons in `e`'s slice; throws (naming the tensor) for a tensor a computed
// slot cannot be made of.
FfAxis ff_axis(const GgufFile & in, const ExpertTensor & e) {
    const FfnPart p = ffn_part(e);
    if (p.kind == "weight" || p.kind == "bias") {
        if (p.base == "ffn_gate_exps" || p.base == "ffn_up_exps") return FfAxis::rows;
        if (p.base == "ffn_gate_up_exps") return FfAxis::gate_up_rows;
        if (p.base == "ffn_down_exps") return p.kind == "weight" ? FfAxis::columns : FfAxis::none;
    }
    fail(
        "%s: tensor '%s' (%s) cannot be combined for a merged slot: only the expert FFN's gate/up/down weights and "
        "biases can (per-expert scales are not foldable here)",
        in.path().c_str(), e.info->name.c_str(), expert_role_name(e.role));
}

// The layer's FFN weight tensors, by base name.
std::map<std::string, const ExpertTensor *> ffn_weights(const MoeLayout & layout, int layer) {
    std::map<std::string, const ExpertTensor *> w;
    for (const auto & e : layout.expert_tensors) {
        if (e.layer == layer && e.role == ExpertRole::expert_weights && ffn_part(e).kind == "weight")
            w[ffn_part(e).base] = &e;
    }
    return w;
}

// Rows of one expert's slice of `t` (its values / ne[0]).
int64_t slice_rows(const TensorInfo & t) {
    int64_t rows = 1;
    for (int d = 1; d < t.n_dims - 1; d++)
        rows *= t.ne[d];
    return rows;
}

}  // namespace

bool computed_per_slot(const ExpertTensor & e) {
    return e.role == ExpertRole::expert_weights || e.role == ExpertRole::chunk_weights;
}

void check_computed_slots(const GgufFile & in, const MoeLayout & layout, const Plan & plan, bool with_imatrix) {
    for (const auto & [il, lp] : plan.layers) {
        if (!lp.computed()) continue;
        for (const auto & e : layout.expert_tensors) {
            if (e.layer != il || !computed_per_slot(e)) continue;
            if (e.role == ExpertRole::chunk_weights) {
                fail("%s: tensor '%s': GroveMoE's adjugate experts cannot follow a merged slot", in.path().c_str(),
                     e.info->name.c_str());
            }
            ff_axis(in, e);
            const TensorInfo & t = *e.info;
            if (!can_dequantize(t.type) || !can_quantize(t.type, t.ne[0], with_imatrix)) {
                fail("%s: tensor '%s' is %s, which reap cannot %s for a merged slot%s", in.path().c_str(),
                     t.name.c_str(), ggml_type_name(t.type), can_dequantize(t.type) ? "write back" : "read",
                     ggml_quantize_requires_imatrix(t.type) && !with_imatrix
                         ? " without an importance matrix (--imatrix)"
                         : "");
            }
        }
        if (plan.merge.align != "none") {
            const auto w     = ffn_weights(layout, il);
            const bool fused = w.count("ffn_gate_up_exps") > 0;
            if ((!fused && !w.count("ffn_up_exps")) || !w.count("ffn_down_exps")) {
                fail("%s: layer %d has no expert up and down weights to align a merged slot's neurons by",
                     in.path().c_str(), il);
            }
        }
    }
}

std::vector<float> GgufSlotMerger::read_floats(const ExpertTensor & e, uint32_t expert) const {
    std::vector<uint8_t> bytes(e.slice_bytes);
    in_.read(*e.info, uint64_t(expert) * e.slice_bytes, bytes.data(), bytes.size());
    const int64_t      n = e.info->ne[0] * slice_rows(*e.info);
    std::vector<float> x(static_cast<size_t>(n));
    dequantize(e.info->type, bytes.data(), x.data(), n);
    return x;
}

const std::vector<std::vector<uint32_t>> & GgufSlotMerger::permutations(int layer, uint32_t slot) {
    return perms_.get(layer, slot, [&]() {
        const Slot &                       s = plan_.layers.at(layer).slots.at(slot);
        std::vector<std::vector<uint32_t>> p(s.sources.size());
        if (plan_.merge.align != "none") {
            const auto           w      = ffn_weights(layout_, layer);
            const auto           gu     = w.find("ffn_gate_up_exps");
            const ExpertTensor * down   = w.at("ffn_down_exps");
            const int64_t        n_ff   = down->info->ne[0];
            const int64_t        n_embd = down->info->ne[1];
            // One expert's gate, up and down at a time besides the centroid's.
            auto load = [&](uint32_t expert, std::vector<float>(&buf)[3], ExpertFfn & f) {
                if (gu != w.end()) {
                    buf[0] = read_floats(*gu->second, expert);
                    f.gate = buf[0].data();
                    f.up   = buf[0].data() + n_ff * n_embd;
                } else {
                    if (w.count("ffn_gate_exps")) {
                        buf[0] = read_floats(*w.at("ffn_gate_exps"), expert);
                        f.gate = buf[0].data();
                    }
                    buf[1] = read_floats(*w.at("ffn_up_exps"), expert);
                    f.up   = buf[1].data();
                }
                buf[2]           = read_floats(*down, expert);
                f.down           = buf[2].data();
                const size_t one = size_t(n_ff * n_embd);
                const bool   ok =
                    buf[2].size() == one && (gu != w.end() ? buf[0].size() == 2 * one
                                                           : buf[1].size() == one && (!f.gate || buf[0].size() == one));
                if (!ok) {
                    fail("%s: layer %d's expert weights do not have one n_ff x n_embd shape", in_.path().c_str(),
                         layer);
                }
            };
            std::vector<float> cbuf[3], mbuf[3];
            ExpertFfn          c, m;
            load(s.sources[0].expert, cbuf, c);
            for (size_t k = 1; k < s.sources.size(); k++) {
                m = {};
                load(s.sources[k].expert, mbuf, m);
                p[k] = align_neurons(c, m, n_ff, n_embd);
            }
        }
        return p;
    });
}

std::vector<uint8_t> GgufSlotMerger::slice(const ExpertTensor & e, uint32_t slot) {
    const TensorInfo &                         t     = *e.info;
    const Slot &                               s     = plan_.layers.at(e.layer).slots.at(slot);
    const FfAxis                               axis  = ff_axis(in_, e);
    const std::vector<std::vector<uint32_t>> & perms = permutations(e.layer, slot);
    const int64_t                              rows  = slice_rows(t);
    std::vector<std::vector<float>>            x;
    std::vector<const float *>                 ptr;
    std::vector<double>                        w;
    for (const auto & src : s.sources) {
        x.push_back(read_floats(e, src.expert));
        ptr.push_back(x.back().data());
        w.push_back(src.weight);
    }
    const std::vector<float> out = combine(axis, rows, t.ne[0], ptr, w, perms);
    // The centroid's importance weights (llama-quantize's in_sum2 / counts), where the job has them.
    std::vector<float> imatrix;
    if (imatrix_ != nullptr) {
        const auto     it = imatrix_->entries.find(t.name);
        const uint32_t c  = s.sources[0].expert;
        if (it != imatrix_->entries.end() && it->second.n_cols == t.ne[0] && c < it->second.n_mat() &&
            it->second.counts[c] > 0) {
            for (int64_t j = 0; j < t.ne[0]; j++)
                imatrix.push_back(float(it->second.in_sum2[size_t(c * t.ne[0] + j)] / it->second.counts[c]));
        } else if (ggml_quantize_requires_imatrix(t.type)) {
            imatrix.assign(size_t(t.ne[0]), 1.0f);  // the type needs one; the centroid was never routed to
        }
    }
    std::vector<uint8_t> bytes(e.slice_bytes);
    const size_t         n =
        quantize(t.type, out.data(), bytes.data(), rows, t.ne[0], imatrix.empty() ? nullptr : imatrix.data());
    if (n != bytes.size()) {
        fail("%s: tensor '%s': a merged slice of %zu bytes where a copied one has %zu", in_.path().c_str(),
             t.name.c_str(), n, bytes.size());
    }
    return bytes;
}

}  // namespace reap
