#include "stats/expert_stats.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "stats/merge_stats.h"
#include "stats/milestones.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace reap {

using nlohmann::json;

LayerStats::LayerStats(size_t n)
    : count(n, 0),
      gate_sum(n, 0),
      raw_gate_sum(n, 0),
      ean_sum(n, 0),
      reap_sum(n, 0),
      reap_sq_sum(n, 0),
      reap_max(n, 0),
      renorm_sum(n, 0),
      out_max(n, 0),
      out_max_channel(n, 0) {}  // the merge Grams start empty: only enable_merge_stats() sizes them

void LayerStats::add(uint32_t e, double gate, double raw_gate, double norm, double r, double renorm) {
    count[e] += 1;
    gate_sum[e] += gate;
    raw_gate_sum[e] += raw_gate;
    ean_sum[e] += norm;
    reap_sum[e] += r;
    reap_sq_sum[e] += r * r;
    reap_max[e] = count[e] == 1 ? r : std::max(reap_max[e], r);
    if (has_renorm()) renorm_sum[e] += renorm;
}

void LayerStats::add_output_max(uint32_t e, double abs_max, uint32_t channel) {
    if (!has_out_max() || !(abs_max > out_max[e])) return;  // the first channel wins a tie
    out_max[e]         = abs_max;
    out_max_channel[e] = channel;
}

void LayerStats::merge(const LayerStats & o) {
    total_tokens += o.total_tokens;
    for (size_t e = 0; e < count.size(); e++) {
        if (o.count[e] > 0) {
            reap_max[e] = count[e] == 0 ? o.reap_max[e] : std::max(reap_max[e], o.reap_max[e]);
        }
        count[e] += o.count[e];
        gate_sum[e] += o.gate_sum[e];
        raw_gate_sum[e] += o.raw_gate_sum[e];
        ean_sum[e] += o.ean_sum[e];
        reap_sum[e] += o.reap_sum[e];
        reap_sq_sum[e] += o.reap_sq_sum[e];
    }
    if (has_renorm() && o.has_renorm()) {
        for (size_t e = 0; e < count.size(); e++)
            renorm_sum[e] += o.renorm_sum[e];
    } else {
        renorm_sum.clear();  // one side never measured it: the sum of both is unknown
    }
    if (has_imatrix() && o.has_imatrix()) {
        for (size_t e = 0; e < count.size(); e++)
            imatrix_sum[e] += o.imatrix_sum[e];
    } else {
        imatrix_sum.clear();
    }
    if (has_out_max() && o.has_out_max()) {
        for (size_t e = 0; e < count.size(); e++) {
            if (o.out_max[e] > out_max[e]) {
                out_max[e]         = o.out_max[e];
                out_max_channel[e] = o.out_max_channel[e];
            }
        }
    } else {
        out_max.clear();  // the maximum of a run that never measured it is unknown
        out_max_channel.clear();
    }
    merge_grams(*this, o);
}

static std::vector<double> per_count(const std::vector<double> & sum, const std::vector<uint64_t> & n) {
    std::vector<double> out(sum.size(), 0.0);
    for (size_t e = 0; e < sum.size(); e++) {
        out[e] = n[e] ? sum[e] / double(n[e]) : 0.0;
    }
    return out;
}

std::vector<double> LayerStats::activation_frequency() const {
    std::vector<double> f(count.size(), 0.0);
    for (size_t e = 0; e < count.size(); e++) {
        f[e] = total_tokens ? double(count[e]) / double(total_tokens) : 0.0;
    }
    return f;
}
std::vector<double> LayerStats::avg_gate_weight() const { return per_count(gate_sum, count); }
std::vector<double> LayerStats::avg_raw_gate_weight() const { return per_count(raw_gate_sum, count); }
std::vector<double> LayerStats::ean_mean() const { return per_count(ean_sum, count); }
std::vector<double> LayerStats::reap() const { return per_count(reap_sum, count); }

std::vector<double> LayerStats::reap_variance() const {
    std::vector<double> v(count.size(), 0.0);
    for (size_t e = 0; e < count.size(); e++) {
        if (count[e] > 1) {
            const double n = double(count[e]), mean = reap_sum[e] / n;
            v[e] = std::max(0.0, (reap_sq_sum[e] - n * mean * mean) / (n - 1));
        }
    }
    return v;
}

std::vector<double> LayerStats::reap_renorm() const {
    if (!has_renorm()) {
        fail(
            "the statistics have no reap_renorm_sum (collected by an older reap, or merged with such a file): "
            "profile again for the reap-renorm criterion");
    }
    return per_count(renorm_sum, count);
}

static std::vector<double> per_token(const std::vector<double> & sum, uint64_t total_tokens) {
    std::vector<double> out(sum.size(), 0.0);
    for (size_t e = 0; e < sum.size(); e++)
        out[e] = total_tokens ? sum[e] / double(total_tokens) : 0.0;
    return out;
}
std::vector<double> LayerStats::reap_per_token() const { return per_token(reap_sum, total_tokens); }
std::vector<double> LayerStats::ean_per_token() const { return per_token(ean_sum, total_tokens); }
std::vector<double> LayerStats::reap_sq_per_token() const { return per_token(reap_sq_sum, total_tokens); }

static void need_imatrix(const LayerStats & L) {
    if (!L.has_imatrix()) {
        fail(
            "the imatrix criteria read an importance matrix, not a stats file: prune with --imatrix FILE and no "
            "--stats");
    }
}
std::vector<double> LayerStats::imatrix_per_token() const {
    need_imatrix(*this);
    return per_token(imatrix_sum, total_tokens);
}
std::vector<double> LayerStats::imatrix_mean() const {
    need_imatrix(*this);
    return per_count(imatrix_sum, count);
}

const std::vector<double> & LayerStats::output_max() const {
    if (!has_out_max()) {
        fail(
            "the statistics have no max_activation (collected by an older reap, or merged with such a file): "
            "profile again for the max-activation criterion and super-expert protection");
    }
    return out_max;
}

uint32_t LayerStats::never_activated() const { return uint32_t(std::count(count.begin(), count.end(), uint64_t(0))); }

json layer_to_json(const LayerStats & L, bool with_derived) {
    json j = {
        {"total_tokens", L.total_tokens}, {"activation_counts", L.count}, {"gate_sum", L.gate_sum},
        {"raw_gate_sum", L.raw_gate_sum}, {"ean_sum", L.ean_sum},         {"reap_sum", L.reap_sum},
        {"reap_sq_sum", L.reap_sq_sum},   {"reap_max", L.reap_max},
    };
    if (with_derived) {
        j["activation_frequency"] = L.activation_frequency();
        j["avg_gate_weight"]      = L.avg_gate_weight();
        j["avg_raw_gate_weight"]  = L.avg_raw_gate_weight();
        j["ean_mean"]             = L.ean_mean();
        j["reap"]                 = L.reap();
        j["reap_variance"]        = L.reap_variance();
        j["never_activated"]      = L.never_activated();
    }
    if (L.has_renorm()) {
        if (with_derived) j["reap_renorm"] = L.reap_renorm();
        j["reap_renorm_sum"] = L.renorm_sum;
    }
    if (L.has_out_max()) {
        j["max_activation"]         = L.out_max;
        j["max_activation_channel"] = L.out_max_channel;
    }
    if (L.has_merge_stats()) j["merge"] = merge_stats_to_json(L);
    return j;
}

json ExpertStats::to_json() const {
    json j = json::object();
    for (const auto & [il, L] : layers)
        j[std::to_string(il)] = layer_to_json(L);
    if (!milestones.empty()) j[k_milestones_key] = milestones_to_json(milestones);
    j[k_stats_meta_key] = meta.to_json();
    return j;
}

// A layer key is a canonical index ("0", "12"). A key that a lax parser would read as a number
// ("01", "+1", " 1", "1abc") is refused: next to "1" it would silently name the same layer.
// Other keys are provenance of other tools and are ignored.
static bool is_layer_key(const std::string & k, const std::string & origin, int & il) {
    uint64_t v = 0;
    if (parse_canonical_uint(k, 1000000, v)) {
        il = int(v);
        return true;
    }
    const size_t first = k.find_first_not_of(" \t\n\r\f\v");
    if (first != std::string::npos && (std::isdigit((unsigned char) k[first]) || k[first] == '+' || k[first] == '-')) {
        fail("%s: key \"%s\" is not a layer index (write layers as 0, 1, 2, ...)", origin.c_str(), k.c_str());
    }
    return false;
}

template <typename T>
static std::vector<T> array_of(const json & L, const char * key, size_t n, const std::string & origin,
                               const std::string & il, bool required) {
    if (!L.contains(key)) {
        if (required) {
            fail("%s: layer %s has no '%s'", origin.c_str(), il.c_str(), key);
        }
        return {};
    }
    const json & a = L.at(key);
    if (!a.is_array() || (n != 0 && a.size() != n)) {
        fail("%s: layer %s: '%s' must be an array of %zu numbers", origin.c_str(), il.c_str(), key, n);
    }
    std::vector<T> out;
    for (const auto & v : a) {
        if (!v.is_number()) {
            fail("%s: layer %s: '%s' holds a non-number", origin.c_str(), il.c_str(), key);
        }
        if (std::is_unsigned<T>::value && (!v.is_number_integer() || v.get<double>() < 0 ||
                                           v.get<double>() > double(std::numeric_limits<T>::max()))) {
            fail("%s: layer %s: '%s' must hold non-negative integers (at most %.0f)", origin.c_str(), il.c_str(), key,
                 double(std::numeric_limits<T>::max()));
        }
        out.push_back(v.get<T>());
    }
    return out;
}

// Sums and maxima of norms and gate weights are never negative, nor infinite.
static void check_sums(const LayerStats & ls, const std::string & origin, const std::string & il) {
    const std::pair<const char *, const std::vector<double> *> sums[] = {
        {"gate_sum", &ls.gate_sum},          {"ean_sum", &ls.ean_sum},       {"reap_sum", &ls.reap_sum},
        {"reap_sq_sum", &ls.reap_sq_sum},    {"reap_max", &ls.reap_max},     {"raw_gate_sum", &ls.raw_gate_sum},
        {"reap_renorm_sum", &ls.renorm_sum}, {"max_activation", &ls.out_max}};
    for (const auto & sum : sums) {
        const bool signed_ok = sum.second == &ls.raw_gate_sum;  // raw router outputs may be negative
        for (size_t e = 0; e < sum.second->size(); e++) {
            const double v = (*sum.second)[e];
            if (!std::isfinite(v) || (!signed_ok && v < 0)) {
                fail("%s: layer %s: '%s' of expert %zu is %g; it must be %s", origin.c_str(), il.c_str(), sum.first, e,
                     v, signed_ok ? "finite" : "finite and not negative");
            }
        }
    }
    for (size_t e = 0; e < ls.count.size(); e++) {
        if (ls.count[e] > ls.total_tokens) {
            fail("%s: layer %s: expert %zu has %llu activations but the layer saw %llu tokens", origin.c_str(),
                 il.c_str(), e, (unsigned long long) ls.count[e], (unsigned long long) ls.total_tokens);
        }
        // Sums only grow with activations: an expert never routed to has nothing to sum.
        if (ls.count[e] == 0 &&
            (ls.gate_sum[e] != 0 || ls.ean_sum[e] != 0 || ls.reap_sum[e] != 0 || ls.reap_sq_sum[e] != 0 ||
             ls.reap_max[e] != 0 || (ls.has_renorm() && ls.renorm_sum[e] != 0) ||
             (ls.has_out_max() && ls.out_max[e] != 0))) {
            fail("%s: layer %s: expert %zu has sums but no activations", origin.c_str(), il.c_str(), e);
        }
    }
}

// Our sums when present; in a prototype file, the sum rebuilt from the mean (exact up to rounding).
static void sum_or_mean(const json & L, const char * sum_key, const char * mean_key, bool mean_required,
                        const std::string & origin, const std::string & il, const std::vector<uint64_t> & count,
                        std::vector<double> & dst) {
    const size_t n   = count.size();
    auto         sum = array_of<double>(L, sum_key, n, origin, il, false);
    if (!sum.empty()) {
        dst = sum;
        return;
    }
    const auto mean = array_of<double>(L, mean_key, n, origin, il, mean_required);
    for (size_t e = 0; e < mean.size(); e++) {
        dst[e] = mean[e] * double(count[e]);
    }
}

LayerStats layer_from_json(const json & L, const std::string & origin, const std::string & il) {
    if (!L.is_object()) {
        fail("%s: layer %s is not an object", origin.c_str(), il.c_str());
    }
    const auto counts = array_of<uint64_t>(L, "activation_counts", 0, origin, il, true);
    if (counts.empty()) {
        fail("%s: layer %s has no experts", origin.c_str(), il.c_str());
    }
    LayerStats ls(counts.size());
    ls.count = counts;
    if (!L.contains("total_tokens") || !L["total_tokens"].is_number_integer() || L["total_tokens"].get<int64_t>() < 0) {
        fail("%s: layer %s: 'total_tokens' must be a non-negative integer", origin.c_str(), il.c_str());
    }
    ls.total_tokens = L["total_tokens"].get<uint64_t>();
    sum_or_mean(L, "gate_sum", "avg_gate_weight", false, origin, il, counts, ls.gate_sum);
    sum_or_mean(L, "raw_gate_sum", "avg_raw_gate_weight", false, origin, il, counts, ls.raw_gate_sum);
    sum_or_mean(L, "ean_sum", "ean_mean", false, origin, il, counts, ls.ean_sum);
    sum_or_mean(L, "reap_sum", "reap", true, origin, il, counts, ls.reap_sum);
    auto sq = array_of<double>(L, "reap_sq_sum", counts.size(), origin, il, false);
    if (!sq.empty()) ls.reap_sq_sum = sq;
    auto mx = array_of<double>(L, "reap_max", counts.size(), origin, il, false);
    if (!mx.empty()) ls.reap_max = mx;
    // reap-renorm: the sum, else rebuilt from the mean; absent in files that predate it.
    ls.renorm_sum.clear();
    if (L.contains("reap_renorm_sum") || L.contains("reap_renorm")) {
        ls.renorm_sum.assign(counts.size(), 0.0);
        sum_or_mean(L, "reap_renorm_sum", "reap_renorm", true, origin, il, counts, ls.renorm_sum);
    }
    // The output maximum and its channel come together or not at all (files that predate them).
    ls.out_max = array_of<double>(L, "max_activation", counts.size(), origin, il, false);
    ls.out_max_channel =
        array_of<uint32_t>(L, "max_activation_channel", counts.size(), origin, il, !ls.out_max.empty());
    if (ls.out_max.empty() && !ls.out_max_channel.empty()) {
        fail("%s: layer %s has 'max_activation_channel' but no 'max_activation'", origin.c_str(), il.c_str());
    }
    check_sums(ls, origin, il);
    if (L.contains("merge")) merge_stats_from_json(L["merge"], origin, il, ls);
    return ls;
}

ExpertStats ExpertStats::from_json(const json & j, const std::string & origin) {
    if (!j.is_object()) {
        fail("%s: a stats file must be a JSON object keyed by layer index", origin.c_str());
    }
    ExpertStats s;
    for (auto it = j.begin(); it != j.end(); ++it) {
        int il = 0;
        if (it.key() == k_stats_meta_key) {
            s.meta = StatsMeta::parse(it.value(), origin);
        } else if (it.key() == k_milestones_key) {
            s.milestones = milestones_from_json(it.value(), origin);
        } else if (is_layer_key(it.key(), origin, il)) {
            s.layers.emplace(il, layer_from_json(it.value(), origin, it.key()));
        }
    }
    if (s.layers.empty()) {
        fail("%s: no layer statistics in the file", origin.c_str());
    }
    check_milestones(s, origin);
    return s;
}

ExpertStats ExpertStats::load(const std::string & path) { return from_json(read_json_file(path, "stats file"), path); }

void ExpertStats::save(const std::string & path) const { write_file_atomic(path, to_json().dump(1) + "\n"); }

void ExpertStats::merge(const ExpertStats & o, const std::string & origin) {
    if (o.layers.size() != layers.size()) {
        fail("%s: has %zu MoE layers, expected %zu: statistics of a different model", origin.c_str(), o.layers.size(),
             layers.size());
    }
    for (const auto & [il, L] : o.layers) {
        auto it = layers.find(il);
        if (it == layers.end() || it->second.n_expert() != L.n_expert()) {
            fail("%s: layer %d does not match (missing or a different expert count): statistics of a different model",
                 origin.c_str(), il);
        }
    }
    for (const auto & [il, L] : o.layers) {
        layers.at(il).merge(L);
    }
    merge_milestones(milestones, o.milestones);
}

MoeShape ExpertStats::shape(bool * groups_known) const {
    MoeShape s = meta.shape(layers.empty() ? 0 : uint32_t(layers.begin()->second.n_expert()), groups_known);
    s.moe_layers.clear();
    for (const auto & kv : layers)
        s.moe_layers.push_back(kv.first);
    return s;
}

}  // namespace reap
