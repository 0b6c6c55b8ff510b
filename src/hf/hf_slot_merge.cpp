#include "hf/hf_slot_merge.h"

#include "core/error.h"
#include "core/tensor_codec.h"
#include "plan/slot_merge.h"

namespace reap {

namespace {

// The projection a per-expert suffix (".gate_proj.weight", ".w2.bias", ...) names, and its part.
struct HfPart {
    std::string proj;  // "gate", "up", "down" ("" for anything else)
    std::string kind;  // "weight", "bias", ...
};

HfPart hf_part(const std::string & suffix) {
    const size_t      dot  = suffix.rfind('.');
    const std::string name = dot == std::string::npos || dot == 0 ? "" : suffix.substr(1, dot - 1);
    const std::string kind = dot == std::string::npos ? "" : suffix.substr(dot + 1);
    if (name == "gate_proj" || name == "w1") return {"gate", kind};
    if (name == "up_proj" || name == "w3") return {"up", kind};
    if (name == "down_proj" || name == "w2") return {"down", kind};
    return {"", kind};
}

FfAxis hf_axis(const HfCheckpoint & c, const std::string & name, const std::string & suffix) {
    const HfPart p = hf_part(suffix);
    if (!p.proj.empty() && (p.kind == "weight" || p.kind == "bias")) {
        if (p.proj == "down") return p.kind == "weight" ? FfAxis::columns : FfAxis::none;
        return FfAxis::rows;
    }
    fail("%s: tensor '%s' cannot be combined for a merged slot: only the experts' gate/up/down weights and biases can",
         c.dir.c_str(), name.c_str());
}

// Rows and columns of a tensor as a row-major matrix (a 1-D tensor: one row).
void matrix_shape(const StTensor & t, int64_t & rows, int64_t & cols) {
    rows = 1;
    cols = t.shape.empty() ? 1 : int64_t(t.shape.back());
    for (size_t d = 0; d + 1 < t.shape.size(); d++)
        rows *= int64_t(t.shape[d]);
}

}  // namespace

void check_hf_computed_slots(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan) {
    for (size_t i = 0; i < c.tensors.size(); i++) {
        const HfTensorRole & r = layout.roles[i];
        if (r.role == HfRole::other || r.role == HfRole::router) continue;
        const auto lp = plan.layers.find(r.layer);
        if (lp == plan.layers.end() || !lp->second.computed()) continue;
        const StTensor & t = *c.tensors[i].t;
        if (r.role == HfRole::fused) {
            fail("%s: tensor '%s': merged slots of fused expert tensors are not supported (a per-expert checkpoint is)",
                 c.dir.c_str(), t.name.c_str());
        }
        hf_axis(c, t.name, r.suffix);
        if (ggml_type_of_dtype(t.dtype) == GGML_TYPE_COUNT) {
            fail("%s: tensor '%s' is %s; a merged slot can be computed from F32, F16 and BF16 only", c.dir.c_str(),
                 t.name.c_str(), t.dtype.c_str());
        }
    }
    if (plan.merge.align == "none") return;
    for (const auto & [il, lp] : plan.layers) {
        if (!lp.computed()) continue;
        bool up = false, down = false;
        for (size_t i = 0; i < c.tensors.size(); i++) {
            const HfTensorRole & r = layout.roles[i];
            if (r.role != HfRole::expert || r.layer != il || hf_part(r.suffix).kind != "weight") continue;
            up   = up || hf_part(r.suffix).proj == "up";
            down = down || hf_part(r.suffix).proj == "down";
        }
        if (!up || !down) {
            fail("%s: layer %d has no per-expert up and down weights to align a merged slot's neurons by",
                 c.dir.c_str(), il);
        }
    }
}

HfSlotMerger::HfSlotMerger(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan)
    : c_(c), layout_(layout), plan_(plan) {
    for (size_t i = 0; i < c.tensors.size(); i++) {
        index_[c.tensors[i].t->name] = i;
        if (layout.roles[i].role == HfRole::expert) prefix_[layout.roles[i].layer] = layout.roles[i].prefix;
    }
}

std::string HfSlotMerger::name_of(int layer, uint32_t expert, const std::string & suffix) const {
    return prefix_.at(layer) + std::to_string(expert) + suffix;
}

std::vector<float> HfSlotMerger::read_floats(const std::string & name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) fail("%s: no tensor '%s' for a merged slot", c_.dir.c_str(), name.c_str());
    const HfTensor &     t    = c_.tensors[it->second];
    const ggml_type      type = ggml_type_of_dtype(t.t->dtype);
    const uint64_t       n    = t.t->nbytes / ggml_type_size(type);
    std::vector<uint8_t> bytes(t.t->nbytes);
    c_.shards[t.shard].read(*t.t, 0, bytes.data(), bytes.size());
    std::vector<float> x(n);
    dequantize(type, bytes.data(), x.data(), int64_t(n));
    return x;
}

const std::vector<std::vector<uint32_t>> & HfSlotMerger::permutations(int layer, uint32_t slot) {
    return perms_.get(layer, slot, [&]() {
        const Slot &                       s = plan_.layers.at(layer).slots.at(slot);
        std::vector<std::vector<uint32_t>> p(s.sources.size());
        if (plan_.merge.align != "none") {
            // The layer's projection suffixes (".gate_proj.weight", ...), from its first expert's tensors.
            std::map<std::string, std::string> suffix;
            for (size_t i = 0; i < c_.tensors.size(); i++) {
                const HfTensorRole & r = layout_.roles[i];
                if (r.role == HfRole::expert && r.layer == layer && hf_part(r.suffix).kind == "weight")
                    suffix[hf_part(r.suffix).proj] = r.suffix;
            }
            const StTensor & down = *c_.tensors[index_.at(name_of(layer, s.sources[0].expert, suffix.at("down")))].t;
            if (down.shape.size() != 2) fail("%s: tensor '%s' is not a matrix", c_.dir.c_str(), down.name.c_str());
            const int64_t n_embd = int64_t(down.shape[0]), n_ff = int64_t(down.shape[1]);
            auto          load = [&](uint32_t expert, std::vector<float>(&buf)[3], ExpertFfn & f) {
                const char * const projs[3] = {"gate", "up", "down"};
                const float **     dst[3]   = {&f.gate, &f.up, &f.down};
                for (int k = 0; k < 3; k++) {
                    if (!suffix.count(projs[k])) continue;
                    buf[k] = read_floats(name_of(layer, expert, suffix.at(projs[k])));
                    if (int64_t(buf[k].size()) != n_ff * n_embd) {
                        fail("%s: layer %d: expert %u's %s weight is not %lld x %lld", c_.dir.c_str(), layer, expert,
                                      projs[k], (long long) n_ff, (long long) n_embd);
                    }
                    *dst[k] = buf[k].data();
                }
            };
            std::vector<float> cbuf[3], mbuf[3];
            ExpertFfn          cf, mf;
            load(s.sources[0].expert, cbuf, cf);
            for (size_t k = 1; k < s.sources.size(); k++) {
                mf = {};
                load(s.sources[k].expert, mbuf, mf);
                p[k] = align_neurons(cf, mf, n_ff, n_embd);
            }
        }
        return p;
    });
}

std::vector<uint8_t> HfSlotMerger::tensor(size_t i, uint32_t slot) {
    const HfTensorRole &                       r     = layout_.roles[i];
    const StTensor &                           t     = *c_.tensors[i].t;
    const Slot &                               s     = plan_.layers.at(r.layer).slots.at(slot);
    const FfAxis                               axis  = hf_axis(c_, t.name, r.suffix);
    const std::vector<std::vector<uint32_t>> & perms = permutations(r.layer, slot);
    int64_t                                    rows = 0, cols = 0;
    matrix_shape(t, rows, cols);
    std::vector<std::vector<float>> x;
    std::vector<const float *>      ptr;
    std::vector<double>             w;
    for (const auto & src : s.sources) {
        x.push_back(read_floats(name_of(r.layer, src.expert, r.suffix)));
        if (int64_t(x.back().size()) != rows * cols) {
            fail("%s: tensor '%s' of expert %u differs in size from its centroid's", c_.dir.c_str(), t.name.c_str(),
                 src.expert);
        }
        ptr.push_back(x.back().data());
        w.push_back(src.weight);
    }
    const std::vector<float> out = combine(axis, rows, cols, ptr, w, perms);
    std::vector<uint8_t>     bytes(t.nbytes);
    if (quantize(ggml_type_of_dtype(t.dtype), out.data(), bytes.data(), 1, rows * cols) != bytes.size()) {
        fail("%s: tensor '%s': a merged tensor of another size", c_.dir.c_str(), t.name.c_str());
    }
    return bytes;
}

}  // namespace reap
