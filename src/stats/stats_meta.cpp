#include "stats/stats_meta.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <limits>

namespace reap {

using nlohmann::json;

namespace {

constexpr size_t k_max_meta_depth = 64;

// Typed reads of one "_meta" key; every error names the file and the key.
struct MetaReader {
    const json &        j;
    const std::string & origin;

    const json * find(const char * key) const {
        auto it = j.find(key);
        return it == j.end() || it->is_null() ? nullptr : &*it;
    }
    [[noreturn]] void bad(const char * key, const char * want) const {
        fail("%s: _meta.%s must be %s", origin.c_str(), key, want);
    }
    uint64_t to_uint(const json & v, const char * key, uint64_t max) const {
        const bool non_negative = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
        if (!non_negative || v.get<uint64_t>() > max) {
            bad(key, strfmt("a non-negative integer up to %llu", (unsigned long long) max).c_str());
        }
        return v.get<uint64_t>();
    }
    template <typename T>
    void uint_field(const char * key, std::optional<T> & out) const {
        if (const json * v = find(key)) out = T(to_uint(*v, key, std::numeric_limits<T>::max()));
    }
    void string_field(const char * key, std::optional<std::string> & out) const {
        if (const json * v = find(key)) {
            if (!v->is_string()) bad(key, "a string");
            out = v->get<std::string>();
        }
    }
    void bool_field(const char * key, std::optional<bool> & out) const {
        if (const json * v = find(key)) {
            if (!v->is_boolean()) bad(key, "true or false");
            out = v->get<bool>();
        }
    }
    // An array (of objects when `of_objects`) or an object, kept as JSON.
    void json_field(const char * key, bool want_array, json & out) const {
        const json * v = find(key);
        if (!v) return;
        if (want_array) {
            if (!v->is_array()) bad(key, "an array of objects");
            for (const auto & e : *v) {
                if (!e.is_object()) bad(key, "an array of objects");
            }
        } else if (!v->is_object()) {
            bad(key, "an object");
        }
        out = *v;
    }
    void layers_field(const char * key, std::optional<std::vector<int>> & out) const {
        const json * v = find(key);
        if (!v) return;
        if (!v->is_array()) bad(key, "an array of layer indices");
        std::vector<int> layers;
        for (const auto & e : *v)
            layers.push_back(int(to_uint(e, key, INT_MAX)));
        out = layers;
    }
    void norms_field(const char * key, std::optional<RouterNorms> & out) const {
        const json * v = find(key);
        if (!v) return;
        const std::optional<RouterNorms> norms = parse_router_norms(*v);
        if (!norms) bad(key, "an object of layer -> router row norms");
        out = *norms;
    }
    void strings_field(const char * key, std::vector<std::string> & out) const {
        const json * v = find(key);
        if (!v) return;
        if (!v->is_array()) bad(key, "an array of file names");
        for (const auto & e : *v) {
            if (!e.is_string()) bad(key, "an array of file names");
            out.push_back(e.get<std::string>());
        }
    }
    void progress_field(const char * key, std::optional<StatsProgress> & out) const {
        const json * v = find(key);
        if (!v) return;
        if (!v->is_object() || !v->contains("complete") || !(*v)["complete"].is_boolean()) {
            bad(key, "an object with samples_done, tokens_done and complete");
        }
        StatsProgress p;
        p.complete = (*v)["complete"].get<bool>();
        if (v->contains("samples_done"))
            p.samples_done = to_uint((*v)["samples_done"], "progress.samples_done", UINT64_MAX);
        if (v->contains("tokens_done"))
            p.tokens_done = to_uint((*v)["tokens_done"], "progress.tokens_done", UINT64_MAX);
        out = p;
    }
    void shard_field(const char * key, std::optional<StatsShard> & out) const {
        const json * v = find(key);
        if (!v) return;
        const char * want = "an object with count, indices (ascending, 1..count) and data";
        if (!v->is_object() || !v->contains("count") || !v->contains("indices") || !v->contains("data") ||
            !(*v)["indices"].is_array() || !(*v)["data"].is_string()) {
            bad(key, want);
        }
        StatsShard s;
        s.count = uint32_t(to_uint((*v)["count"], "shard.count", 1u << 20));
        s.data  = (*v)["data"].get<std::string>();
        for (const auto & e : (*v)["indices"]) {
            const uint32_t i = uint32_t(to_uint(e, "shard.indices", s.count));
            if (i == 0 || (!s.indices.empty() && i <= s.indices.back())) bad(key, want);
            s.indices.push_back(i);
        }
        if (s.indices.empty()) bad(key, want);
        out = s;
    }
    void imatrix_field(const char * key, std::optional<StatsImatrix> & out) const {
        const json * v = find(key);
        if (!v) return;
        if (!v->is_object() || !v->contains("file") || !v->contains("hash") || !(*v)["file"].is_string() ||
            !(*v)["hash"].is_string() || (*v)["file"].get<std::string>().empty()) {
            bad(key, "an object with file and hash");
        }
        out = StatsImatrix{(*v)["file"].get<std::string>(), (*v)["hash"].get<std::string>()};
    }
};

// Whether `j` nests arrays/objects deeper than `limit`, found without recursion: copying a
// hostile, deeply nested "_meta" recursively would overflow the stack.
bool nested_deeper_than(const json & j, size_t limit) {
    std::vector<std::pair<const json *, size_t>> todo = {{&j, 1}};
    while (!todo.empty()) {
        const auto [v, depth] = todo.back();
        todo.pop_back();
        if (!v->is_structured()) continue;
        if (depth > limit) return true;
        for (const auto & child : *v)
            todo.push_back({&child, depth + 1});
    }
    return false;
}

const char * const k_known_keys[] = {"architecture",
                                     "model",
                                     "model_path",
                                     "model_size",
                                     "model_content_id",
                                     "n_layer",
                                     "n_expert",
                                     "n_expert_used",
                                     "n_expert_groups",
                                     "n_group_used",
                                     "experts_per_chunk",
                                     "moe_layers",
                                     "router_fingerprint",
                                     "router_norms",
                                     "tool",
                                     "date",
                                     "fingerprint",
                                     "calibration",
                                     "options",
                                     "samples",
                                     "tokens",
                                     "gate_applied_before_expert",
                                     "merged_from",
                                     "progress",
                                     "shard",
                                     "imatrix",
                                     "merge_stats"};

bool is_known_key(const std::string & k) {
    for (const char * known : k_known_keys) {
        if (k == known) return true;
    }
    return false;
}

}  // namespace

StatsMeta StatsMeta::parse(const json & j, const std::string & origin) {
    if (!j.is_object()) {
        fail("%s: _meta must be an object (it is %s)", origin.c_str(), j.type_name());
    }
    if (nested_deeper_than(j, k_max_meta_depth)) {
        fail("%s: _meta nests deeper than %zu levels", origin.c_str(), k_max_meta_depth);
    }
    const MetaReader r{j, origin};
    StatsMeta        m;
    r.string_field("architecture", m.architecture);
    r.string_field("model", m.model);
    r.string_field("model_path", m.model_path);
    r.uint_field("model_size", m.model_size);
    r.string_field("model_content_id", m.model_content_id);
    r.uint_field("n_layer", m.n_layer);
    r.uint_field("n_expert", m.n_expert);
    r.uint_field("n_expert_used", m.n_expert_used);
    r.uint_field("n_expert_groups", m.n_expert_groups);
    r.uint_field("n_group_used", m.n_group_used);
    r.uint_field("experts_per_chunk", m.experts_per_chunk);
    r.layers_field("moe_layers", m.moe_layers);
    r.string_field("router_fingerprint", m.router_fingerprint);
    r.norms_field("router_norms", m.router_norms);
    r.string_field("tool", m.tool);
    r.string_field("date", m.date);
    r.string_field("fingerprint", m.fingerprint);
    r.json_field("calibration", true, m.calibration);
    r.json_field("options", false, m.options);
    r.uint_field("samples", m.samples);
    r.uint_field("tokens", m.tokens);
    r.bool_field("gate_applied_before_expert", m.gate_applied_before_expert);
    r.strings_field("merged_from", m.merged_from);
    r.progress_field("progress", m.progress);
    r.shard_field("shard", m.shard);
    r.imatrix_field("imatrix", m.imatrix);
    r.uint_field("merge_stats", m.merge_stats);
    for (const auto & [k, v] : j.items()) {
        if (!is_known_key(k)) m.unknown[k] = v;
    }
    return m;
}

json StatsMeta::to_json() const {
    json j   = unknown.is_object() ? unknown : json::object();
    auto put = [&](const char * key, const auto & opt) {
        if (opt) j[key] = *opt;
    };
    put("tool", tool);
    put("date", date);
    put("model", model);
    put("model_path", model_path);
    put("model_size", model_size);
    put("model_content_id", model_content_id);
    put("architecture", architecture);
    put("n_layer", n_layer);
    put("n_expert", n_expert);
    put("n_expert_used", n_expert_used);
    put("n_expert_groups", n_expert_groups);
    put("n_group_used", n_group_used);
    put("experts_per_chunk", experts_per_chunk);
    put("moe_layers", moe_layers);
    put("router_fingerprint", router_fingerprint);
    if (router_norms) {
        json n = json::object();
        for (const auto & [il, row] : *router_norms)
            n[std::to_string(il)] = row;
        j["router_norms"] = n;
    }
    put("fingerprint", fingerprint);
    if (!options.is_null()) j["options"] = options;
    put("gate_applied_before_expert", gate_applied_before_expert);
    if (!calibration.is_null()) j["calibration"] = calibration;
    put("samples", samples);
    put("tokens", tokens);
    if (!merged_from.empty()) j["merged_from"] = merged_from;
    if (progress) {
        j["progress"] = {{"samples_done", progress->samples_done},
                         {"tokens_done", progress->tokens_done},
                         {"complete", progress->complete}};
    }
    if (shard) j["shard"] = {{"count", shard->count}, {"indices", shard->indices}, {"data", shard->data}};
    if (imatrix) j["imatrix"] = {{"file", imatrix->file}, {"hash", imatrix->hash}};
    put("merge_stats", merge_stats);
    return j;
}

json StatsMeta::operator[](const std::string & key) const {
    const json j = to_json();
    return j.contains(key) ? j[key] : json();
}

std::optional<RouterNorms> parse_router_norms(const nlohmann::json & v) {
    if (!v.is_object()) return std::nullopt;
    RouterNorms norms;
    for (const auto & [layer, row] : v.items()) {
        uint64_t il = 0;
        if (!parse_canonical_uint(layer, INT_MAX, il) || !row.is_array()) return std::nullopt;
        for (const auto & x : row) {
            if (!x.is_number() || !(std::fabs(x.get<double>()) <= FLT_MAX)) return std::nullopt;
            norms[int(il)].push_back(float(x.get<double>()));
        }
    }
    return norms;
}

std::string StatsMeta::partial_run() const {
    if (!complete()) {
        return strfmt("a checkpoint of an unfinished profile run (%llu samples, %llu tokens done)",
                      (unsigned long long) progress->samples_done, (unsigned long long) progress->tokens_done);
    }
    if (shard && shard->indices.size() < shard->count) {
        std::vector<uint32_t> missing;
        for (uint32_t i = 1; i <= shard->count; i++)
            if (!std::binary_search(shard->indices.begin(), shard->indices.end(), i)) missing.push_back(i);
        return strfmt("shard%s %s of %u of a sharded profile run (shard%s %s missing)",
                      shard->indices.size() > 1 ? "s" : "", id_ranges(shard->indices).c_str(), shard->count,
                      missing.size() > 1 ? "s" : "", id_ranges(missing).c_str());
    }
    return "";
}

StatsMeta StatsMeta::for_model(const MoeShape & shape, const std::string & model_path, uint64_t size) {
    StatsMeta m;
    m.architecture    = shape.arch;
    m.model           = base_name(model_path);
    m.model_path      = model_path;
    m.model_size      = size;
    m.n_layer         = shape.n_layer;
    m.n_expert        = shape.n_expert;
    m.n_expert_used   = shape.n_expert_used;
    m.n_expert_groups = shape.n_expert_groups;
    m.n_group_used    = shape.n_group_used;
    if (shape.experts_per_chunk > 0) m.experts_per_chunk = shape.experts_per_chunk;
    m.moe_layers = shape.moe_layers;
    if (!shape.router_fingerprint.empty()) m.router_fingerprint = shape.router_fingerprint;
    if (!shape.router_norms.empty()) m.router_norms = shape.router_norms;
    return m;
}

MoeShape StatsMeta::shape(uint32_t fallback_n_expert, bool * groups_known) const {
    MoeShape s;
    s.arch               = architecture.value_or("");
    s.n_layer            = n_layer.value_or(0);
    s.n_expert           = n_expert.value_or(fallback_n_expert);
    s.n_expert_used      = n_expert_used.value_or(0);
    s.n_expert_groups    = n_expert_groups.value_or(0);
    s.n_group_used       = n_group_used.value_or(0);
    s.experts_per_chunk  = experts_per_chunk.value_or(0);
    s.moe_layers         = moe_layers.value_or(std::vector<int>());
    s.router_fingerprint = router_fingerprint.value_or("");
    s.router_norms       = router_norms.value_or(RouterNorms());
    if (groups_known) *groups_known = n_expert_groups.has_value();
    return s;
}

namespace {

template <typename T>
std::string shown(const T & v) {
    return json(v).dump();
}

template <typename T>
void same_field(const char * key, const std::optional<T> & a, const std::optional<T> & b, const std::string & path,
                const char * a_is) {
    if (a && b && *a != *b) {
        fail("%s: %s is %s, but %s in %s: statistics of different models", path.c_str(), key, shown(*b).c_str(),
             shown(*a).c_str(), a_is);
    }
}

}  // namespace

void check_same_model(const StatsMeta & a, const StatsMeta & b, const std::string & path, SameModel level,
                      const char * a_is) {
    same_field("architecture", a.architecture, b.architecture, path, a_is);
    same_field("n_layer", a.n_layer, b.n_layer, path, a_is);
    same_field("n_expert", a.n_expert, b.n_expert, path, a_is);
    same_field("n_expert_used", a.n_expert_used, b.n_expert_used, path, a_is);
    same_field("n_expert_groups", a.n_expert_groups, b.n_expert_groups, path, a_is);
    same_field("experts_per_chunk", a.experts_per_chunk, b.experts_per_chunk, path, a_is);
    same_field("moe_layers", a.moe_layers, b.moe_layers, path, a_is);
    same_field("router_fingerprint", a.router_fingerprint, b.router_fingerprint, path, a_is);
    if (level == SameModel::shape) return;
    // Same shape is not the same model: the content tells weights apart (a renamed copy is the
    // same model); files from before it was recorded fall back to the file's name and size.
    if (a.model_content_id && b.model_content_id) {
        same_field("model_content_id", a.model_content_id, b.model_content_id, path, a_is);
        return;
    }
    same_field("model", a.model, b.model, path, a_is);
    same_field("model_size", a.model_size, b.model_size, path, a_is);
}

}  // namespace reap
