#include "hf/hf_layout.h"

#include "core/error.h"
#include "core/tensor_codec.h"
#include "core/text.h"

#include "ggml.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

namespace reap {

namespace {

// The layer of "…layers.<i>.…" (model.layers, backbone.layers, language_model.model.layers), or -1.
int hf_layer(const std::string & name) {
    size_t at = 0;
    while ((at = name.find("layers.", at)) != std::string::npos) {
        if (at == 0 || name[at - 1] == '.') {
            const size_t b = at + 7, e = name.find('.', b);
            uint64_t     il = 0;
            if (e != std::string::npos && parse_canonical_uint(name.substr(b, e - b), 1u << 20, il)) return int(il);
        }
        at += 7;
    }
    return -1;
}

struct Analysis {
    const HfCheckpoint &                                     c;
    HfLayout &                                               out;
    std::map<int, std::string>                               block_of;    // layer -> MoE block prefix
    std::map<int, std::map<std::string, std::set<uint32_t>>> per_expert;  // layer -> suffix -> ids

    const std::string & path(size_t i) const { return c.shards[c.tensors[i].shard].path(); }
    const StTensor &    t(size_t i) const { return *c.tensors[i].t; }
    uint32_t            n_expert() const { return out.config.n_expert; }

    uint64_t expert_axis_slice(size_t i, const char * what) const {
        const StTensor & x = t(i);
        if (x.shape.empty() || x.shape[0] != n_expert() || x.nbytes % n_expert() != 0) {
            fail("%s: tensor '%s' looks like %s but its first dimension is not the %u experts of config.json",
                 path(i).c_str(), x.name.c_str(), what, n_expert());
        }
        return x.nbytes / n_expert();
    }

    void set_block(int il, const std::string & block, size_t i) {
        const auto it = block_of.find(il);
        if (it != block_of.end() && it->second != block) {
            fail("%s: tensor '%s' puts layer %d's experts under '%s' and '%s'", path(i).c_str(), t(i).name.c_str(), il,
                 it->second.c_str(), block.c_str());
        }
        block_of[il] = block;
    }

    // First pass: tensors with ".experts." in their name.
    void expert_tensor(size_t i, size_t at) {
        const std::string & name = t(i).name;
        HfTensorRole &      r    = out.roles[i];
        r.layer                  = hf_layer(name);
        if (r.layer < 0) fail("%s: expert tensor '%s' is not inside a layer", path(i).c_str(), name.c_str());
        set_block(r.layer, name.substr(0, at), i);
        const size_t rest = at + 9;  // after ".experts."
        const size_t dot  = name.find('.', rest);
        uint64_t     id   = 0;
        if (dot != std::string::npos && parse_canonical_uint(name.substr(rest, dot - rest), 1u << 20, id)) {
            if (id >= n_expert()) {
                fail("%s: tensor '%s' is expert %llu, but config.json says %u experts", path(i).c_str(), name.c_str(),
                     (unsigned long long) id, n_expert());
            }
            r.role        = HfRole::expert;
            r.expert      = uint32_t(id);
            r.prefix      = name.substr(0, rest);
            r.suffix      = name.substr(dot);
            r.slice_bytes = t(i).nbytes;
            per_expert[r.layer][r.suffix].insert(r.expert);
        } else {
            r.role        = HfRole::fused;
            r.slice_bytes = expert_axis_slice(i, "a fused expert tensor");
        }
    }

    // Second pass: the other tensors of an MoE block.
    void block_tensor(size_t i) {
        const std::string & name = t(i).name;
        HfTensorRole &      r    = out.roles[i];
        r.layer                  = hf_layer(name);
        const auto it            = block_of.find(r.layer);
        if (it == block_of.end() || name.compare(0, it->second.size() + 1, it->second + ".") != 0) {
            if (name.find("experts") != std::string::npos && name.find("shared_expert") == std::string::npos) {
                fail("%s: tensor '%s' names experts but is in no MoE layer this tool recognises", path(i).c_str(),
                     name.c_str());
            }
            return;
        }
        const std::string sub = name.substr(it->second.size() + 1);
        if (starts_with(sub, "gate.") || starts_with(sub, "router.")) {
            r.role        = HfRole::router;
            r.slice_bytes = expert_axis_slice(i, "a router tensor");
            return;
        }
        if (sub.find("shared_expert") != std::string::npos) return;
        bool expert_sized = sub.find("expert") != std::string::npos;
        for (uint64_t d : t(i).shape)
            expert_sized = expert_sized || d == n_expert();
        if (expert_sized) {
            fail(
                "%s: tensor '%s' has an expert-sized dimension but is no expert tensor this tool knows; refusing "
                "to guess how to prune it",
                path(i).c_str(), name.c_str());
        }
    }

    // Every per-expert companion present for every expert of its layer.
    void check_complete() const {
        for (const auto & [il, suffixes] : per_expert) {
            for (const auto & [suffix, ids] : suffixes) {
                if (ids.size() != n_expert()) {
                    fail("%s: layer %d has '%s' for %zu of its %u experts", c.dir.c_str(), il, suffix.c_str(),
                         ids.size(), n_expert());
                }
            }
        }
    }
};

float to_f32(const uint8_t * p, const std::string & dtype) {
    float v;
    dequantize(ggml_type_of_dtype(dtype), p, &v, 1);
    return v;
}

}  // namespace

std::vector<float> hf_row_norms(const SafetensorsFile & f, const StTensor & t) {
    if (t.shape.size() != 2 || (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")) return {};
    const size_t         w = t.dtype == "F32" ? 4 : 2;
    std::vector<uint8_t> row(size_t(t.shape[1]) * w);
    std::vector<float>   norms;
    for (uint64_t r = 0; r < t.shape[0]; r++) {
        f.read(t, r * row.size(), row.data(), row.size());
        double s = 0;
        for (size_t k = 0; k < size_t(t.shape[1]); k++) {
            const double v = to_f32(&row[k * w], t.dtype);
            s += v * v;
        }
        const double n = std::sqrt(s);
        norms.push_back(n > FLT_MAX ? INFINITY : float(n));
    }
    return norms;
}

HfLayout analyze_hf(const HfCheckpoint & c) {
    HfLayout out;
    out.config = read_moe_config(c.config, c.config_path);
    out.roles.resize(c.tensors.size());
    Analysis            a{c, out, {}, {}};
    std::vector<size_t> rest;
    for (size_t i = 0; i < c.tensors.size(); i++) {
        const size_t at = c.tensors[i].t->name.find(".experts.");
        if (at != std::string::npos) {
            a.expert_tensor(i, at);
        } else {
            rest.push_back(i);
        }
    }
    if (a.block_of.empty()) fail("%s: no expert tensors (…experts.<j>.… or fused …experts.…)", c.dir.c_str());
    for (size_t i : rest)
        a.block_tensor(i);
    a.check_complete();

    MoeShape & s              = out.shape;
    s.arch                    = out.config.arch;
    s.n_expert                = out.config.n_expert;
    s.n_expert_used           = out.config.n_expert_used;
    s.n_expert_groups         = out.config.n_expert_groups;
    s.n_group_used            = out.config.n_group_used;
    s.n_layer                 = out.config.n_layer != 0 ? out.config.n_layer : uint32_t(a.block_of.rbegin()->first + 1);
    const int64_t first_nextn = int64_t(s.n_layer) - int64_t(out.config.n_nextn);
    for (const auto & [il, block] : a.block_of) {
        if (il >= int(s.n_layer)) {
            fail("%s: experts in layer %d, but the model has %u layers", c.config_path.c_str(), il, s.n_layer);
        }
        HfMoeLayer L{il, block, il >= first_nextn, false, ""};
        (L.nextn ? s.nextn_layers : s.moe_layers).push_back(il);
        for (size_t i : rest) {
            const std::string & n = c.tensors[i].t->name;
            if (out.roles[i].layer != il || n.compare(0, block.size() + 1, block + ".") != 0) continue;
            L.shared_expert = L.shared_expert || n.find("shared_expert") != std::string::npos;
            if (out.roles[i].role == HfRole::router && c.tensors[i].t->shape.size() == 2 && L.router.empty()) {
                L.router = n;
                if (!L.nextn) s.router_norms[il] = hf_row_norms(c.shards[c.tensors[i].shard], *c.tensors[i].t);
            }
        }
        out.layers.push_back(L);
    }
    if (s.moe_layers.empty()) fail("%s: experts only in next-token-prediction layers", c.dir.c_str());
    return out;
}

uint64_t HfLayout::expert_bytes() const {
    uint64_t b = 0;
    for (const auto & r : roles) {
        if (r.role == HfRole::expert) b += r.slice_bytes;
        if (r.role == HfRole::fused) b += r.slice_bytes * config.n_expert;
    }
    return b;
}

}  // namespace reap
