#include "gguf/gguf_pruning_record.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"

#include <climits>
#include <cmath>
#include <map>
#include <vector>

namespace reap {

namespace {

const std::string k_prefix       = "reap.prune.";
const std::string k_layer_prefix = "reap.prune.layer.";

std::string layer_key(int il, const char * field) { return k_layer_prefix + std::to_string(il) + "." + field; }

// Typed, strict reads of one context's keys: a key of another type than the writer's is an error
// (ggml's getters abort on a type mismatch, so the type is checked first).
struct KeyReader {
    const gguf_context * ctx;
    const std::string &  origin;

    [[noreturn]] void bad(const std::string & key, const std::string & what) const {
        fail("%s: pruning record key '%s' %s", origin.c_str(), key.c_str(), what.c_str());
    }
    int64_t find(const std::string & key, gguf_type type, bool required) const {
        const int64_t k = gguf_find_key(ctx, key.c_str());
        if (k < 0) {
            if (required) fail("%s: pruning record without its key '%s'", origin.c_str(), key.c_str());
            return -1;
        }
        if (gguf_get_kv_type(ctx, k) != type) {
            bad(key, std::string("is a ") + gguf_type_name(gguf_get_kv_type(ctx, k)) + ", expected a " +
                         gguf_type_name(type));
        }
        return k;
    }
    std::optional<std::string> str(const std::string & key, bool required) const {
        const int64_t k = find(key, GGUF_TYPE_STRING, required);
        if (k < 0) return std::nullopt;
        return std::string(gguf_get_val_str(ctx, k));
    }
    std::optional<uint32_t> u32(const std::string & key, bool required) const {
        const int64_t k = find(key, GGUF_TYPE_UINT32, required);
        if (k < 0) return std::nullopt;
        return gguf_get_val_u32(ctx, k);
    }
    // An array of `elem` (u32 or f32) as `T`; nullopt when absent.
    template <typename T>
    std::optional<std::vector<T>> array(const std::string & key, gguf_type elem) const {
        const int64_t k = find(key, GGUF_TYPE_ARRAY, false);
        if (k < 0) return std::nullopt;
        if (gguf_get_arr_type(ctx, k) != elem) {
            bad(key, std::string("is an array of ") + gguf_type_name(gguf_get_arr_type(ctx, k)) + ", expected " +
                         gguf_type_name(elem));
        }
        const size_t n = gguf_get_arr_n(ctx, k);
        const T *    d = static_cast<const T *>(gguf_get_arr_data(ctx, k));
        return std::vector<T>(d, d + n);
    }
};

// The per-layer arrays of a record, as stored.
struct LayerKeys {
    std::optional<std::vector<uint32_t>> kept, slot_sizes, sources;
    std::optional<std::vector<float>>    weights;
};

// Every reap.prune.layer.<il>.<field> key of `ctx`, read by field; other names under the layer
// prefix are refused (a hostile or damaged record must not be half-read).
std::map<int, LayerKeys> layer_keys(const KeyReader & r) {
    std::map<int, LayerKeys> layers;
    for (int64_t i = 0; i < gguf_get_n_kv(r.ctx); i++) {
        const std::string key = gguf_get_key(r.ctx, i);
        if (key.rfind(k_layer_prefix, 0) != 0) continue;
        const std::string rest = key.substr(k_layer_prefix.size());
        const size_t      dot  = rest.find('.');
        uint64_t          il   = 0;
        if (dot == std::string::npos || !parse_canonical_uint(rest.substr(0, dot), INT_MAX, il)) {
            r.bad(key, "is not reap.prune.layer.<layer index>.<field>");
        }
        const std::string field = rest.substr(dot + 1);
        LayerKeys &       l     = layers[int(il)];
        if (field == "kept") {
            l.kept = r.array<uint32_t>(key, GGUF_TYPE_UINT32);
        } else if (field == "slot_sizes") {
            l.slot_sizes = r.array<uint32_t>(key, GGUF_TYPE_UINT32);
        } else if (field == "sources") {
            l.sources = r.array<uint32_t>(key, GGUF_TYPE_UINT32);
        } else if (field == "weights") {
            l.weights = r.array<float>(key, GGUF_TYPE_FLOAT32);
        } else {
            r.bad(key, "names no field of a layer's record (kept, slot_sizes, sources, weights)");
        }
    }
    return layers;
}

// One layer's slots from its stored arrays, every size and id checked.
std::vector<Slot> layer_slots(const std::string & origin, int il, const LayerKeys & l, bool merged, uint32_t n_expert) {
    const char * o = origin.c_str();
    if (!l.kept) fail("%s: pruning record of layer %d has no kept experts (%s)", o, il, layer_key(il, "kept").c_str());
    const std::vector<uint32_t> & kept = *l.kept;
    for (size_t i = 0; i < kept.size(); i++) {
        if (kept[i] >= n_expert || (i > 0 && kept[i] <= kept[i - 1])) {
            fail("%s: pruning record of layer %d: kept expert %u is not below %u or not ascending", o, il, kept[i],
                 n_expert);
        }
    }
    std::vector<Slot> slots;
    if (!merged) {
        if (l.slot_sizes || l.sources || l.weights) {
            fail("%s: pruning record of layer %d has slot sources but no reap.prune.merge.method", o, il);
        }
        for (uint32_t e : kept)
            slots.push_back(Slot{{SlotSource{e, 1.0}}});
        return slots;
    }
    if (!l.slot_sizes || !l.sources || !l.weights) {
        fail("%s: merged pruning record of layer %d lacks its slot_sizes, sources or weights", o, il);
    }
    const auto & sizes   = *l.slot_sizes;
    const auto & sources = *l.sources;
    const auto & weights = *l.weights;
    if (sizes.size() != kept.size()) {
        fail("%s: pruning record of layer %d has %zu slot sizes for %zu kept experts", o, il, sizes.size(),
             kept.size());
    }
    uint64_t total = 0;
    for (uint32_t s : sizes) {
        if (s == 0) fail("%s: pruning record of layer %d has a slot of no source", o, il);
        total += s;
    }
    if (total != sources.size() || total != weights.size()) {
        fail("%s: pruning record of layer %d: the slot sizes add up to %llu, with %zu sources and %zu weights", o, il,
             (unsigned long long) total, sources.size(), weights.size());
    }
    size_t next = 0;
    for (size_t i = 0; i < sizes.size(); i++) {
        Slot slot;
        for (uint32_t k = 0; k < sizes[i]; k++, next++) {
            if (sources[next] >= n_expert) {
                fail("%s: pruning record of layer %d: source expert %u is not below %u", o, il, sources[next],
                     n_expert);
            }
            if (!std::isfinite(weights[next])) {
                fail("%s: pruning record of layer %d: the weight of source expert %u is not finite", o, il,
                     sources[next]);
            }
            slot.sources.push_back(SlotSource{sources[next], double(weights[next])});
        }
        if (slot.sources[0].expert != kept[i]) {
            fail("%s: pruning record of layer %d: slot %zu starts with expert %u, not its kept expert %u", o, il, i,
                 slot.sources[0].expert, kept[i]);
        }
        slots.push_back(std::move(slot));
    }
    return slots;
}

}  // namespace

void write_pruning_record(gguf_context * ctx, const Plan & plan, const std::string & source,
                          uint32_t n_expert_original) {
    std::vector<std::string> stale;
    for (int64_t i = 0; i < gguf_get_n_kv(ctx); i++) {
        const std::string key = gguf_get_key(ctx, i);
        if (key.rfind(k_prefix, 0) == 0) stale.push_back(key);
    }
    for (const auto & key : stale)
        gguf_remove_key(ctx, key.c_str());

    // The keys of every pruned model, in the order older reaps wrote them.
    gguf_set_val_str(ctx, "reap.prune.criterion", plan.criterion.c_str());
    gguf_set_val_f32(ctx, "reap.prune.keep_ratio", float(plan.keep_ratio));
    gguf_set_val_u32(ctx, "reap.prune.n_expert_original", n_expert_original);
    gguf_set_val_str(ctx, "reap.prune.source", base_name(source).c_str());
    if (!plan.stats.empty()) gguf_set_val_str(ctx, "reap.prune.stats", base_name(plan.stats).c_str());
    for (const auto & [il, lp] : plan.layers) {
        gguf_set_arr_data(ctx, layer_key(il, "kept").c_str(), GGUF_TYPE_UINT32, lp.kept.data(), lp.kept.size());
    }
    if (plan.merge.empty()) return;  // a pruning plan: its slots are its kept ids

    gguf_set_val_str(ctx, "reap.prune.merge.method", plan.merge.method.c_str());
    gguf_set_val_str(ctx, "reap.prune.merge.align", plan.merge.align.c_str());
    gguf_set_val_u32(ctx, "reap.prune.merge.group_size", plan.merge.group_size);
    for (const auto & [il, lp] : plan.layers) {
        std::vector<uint32_t> sizes, sources;
        std::vector<float>    weights;
        for (const Slot & s : lp.slots) {
            sizes.push_back(uint32_t(s.sources.size()));
            for (const SlotSource & so : s.sources) {
                sources.push_back(so.expert);
                weights.push_back(float(so.weight));
            }
        }
        gguf_set_arr_data(ctx, layer_key(il, "slot_sizes").c_str(), GGUF_TYPE_UINT32, sizes.data(), sizes.size());
        gguf_set_arr_data(ctx, layer_key(il, "sources").c_str(), GGUF_TYPE_UINT32, sources.data(), sources.size());
        gguf_set_arr_data(ctx, layer_key(il, "weights").c_str(), GGUF_TYPE_FLOAT32, weights.data(), weights.size());
    }
}

std::optional<PruningRecord> read_pruning_record(const gguf_context * ctx, const std::string & origin) {
    bool any = false;
    for (int64_t i = 0; i < gguf_get_n_kv(ctx) && !any; i++)
        any = std::string(gguf_get_key(ctx, i)).rfind(k_prefix, 0) == 0;
    if (!any) return std::nullopt;

    const KeyReader r{ctx, origin};
    PruningRecord   rec;
    rec.criterion         = *r.str("reap.prune.criterion", true);
    rec.source            = *r.str("reap.prune.source", true);
    rec.stats             = r.str("reap.prune.stats", false).value_or("");
    rec.n_expert_original = *r.u32("reap.prune.n_expert_original", true);
    r.find("reap.prune.keep_ratio", GGUF_TYPE_FLOAT32, false);  // informative; its type checked
    const auto method = r.str("reap.prune.merge.method", false);
    const auto align  = r.str("reap.prune.merge.align", false);
    const auto group  = r.u32("reap.prune.merge.group_size", false);
    if (method) {
        if (method->empty()) r.bad("reap.prune.merge.method", "is empty");
        rec.merge = MergeRecord{*method, align.value_or(""), group.value_or(0)};
    } else if (align || group) {
        fail("%s: pruning record with a merge alignment or group size but no reap.prune.merge.method", origin.c_str());
    }
    const auto layers = layer_keys(r);
    if (layers.empty()) fail("%s: pruning record of no layer (no reap.prune.layer.<il>.kept)", origin.c_str());
    for (const auto & [il, keys] : layers)
        rec.slots[il] = layer_slots(origin, il, keys, !rec.merge.empty(), rec.n_expert_original);
    return rec;
}

std::optional<PruningRecord> read_pruning_record(const GgufFile & f) { return read_pruning_record(f.meta(), f.path()); }

}  // namespace reap
