#include "stats/expert_stats.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

namespace reap {

using nlohmann::json;

LayerStats::LayerStats(size_t n)
    : count(n, 0), gate_sum(n, 0), raw_gate_sum(n, 0), ean_sum(n, 0), reap_sum(n, 0), reap_sq_sum(n, 0),
      reap_max(n, 0) {}

void LayerStats::add(uint32_t e, double gate, double raw_gate, double norm, double r) {
    count[e] += 1;
    gate_sum[e] += gate;
    raw_gate_sum[e] += raw_gate;
    ean_sum[e] += norm;
    reap_sum[e] += r;
    reap_sq_sum[e] += r * r;
    reap_max[e] = count[e] == 1 ? r : std::max(reap_max[e], r);
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

uint32_t LayerStats::never_activated() const {
    return uint32_t(std::count(count.begin(), count.end(), uint64_t(0)));
}

json ExpertStats::to_json() const {
    json j = json::object();
    for (const auto & [il, L] : layers) {
        j[std::to_string(il)] = {
            {"total_tokens", L.total_tokens},
            {"activation_counts", L.count},
            {"activation_frequency", L.activation_frequency()},
            {"avg_gate_weight", L.avg_gate_weight()},
            {"avg_raw_gate_weight", L.avg_raw_gate_weight()},
            {"ean_mean", L.ean_mean()},
            {"reap", L.reap()},
            {"reap_max", L.reap_max},
            {"reap_variance", L.reap_variance()},
            {"never_activated", L.never_activated()},
            {"gate_sum", L.gate_sum},
            {"raw_gate_sum", L.raw_gate_sum},
            {"ean_sum", L.ean_sum},
            {"reap_sum", L.reap_sum},
            {"reap_sq_sum", L.reap_sq_sum},
        };
    }
    j[k_stats_meta_key] = meta;
    return j;
}

static bool is_layer_key(const std::string & k) {
    return !k.empty() && k.size() < 7 && std::all_of(k.begin(), k.end(), [](char c) { return std::isdigit((unsigned char) c); });
}

template <typename T>
static std::vector<T> array_of(const json & L, const char * key, size_t n, const std::string & origin, const std::string & il,
                               bool required) {
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
        if (std::is_unsigned<T>::value && (!v.is_number_integer() || v.get<double>() < 0)) {
            fail("%s: layer %s: '%s' must hold non-negative integers", origin.c_str(), il.c_str(), key);
        }
        out.push_back(v.get<T>());
    }
    return out;
}

ExpertStats ExpertStats::from_json(const json & j, const std::string & origin) {
    if (!j.is_object()) {
        fail("%s: a stats file must be a JSON object keyed by layer index", origin.c_str());
    }
    ExpertStats s;
    for (const auto & item : j.items()) {
        // Named copies, not structured bindings: lambdas below capture them (C++17 forbids that).
        const std::string key = item.key();
        const json &      L   = item.value();
        if (key == k_stats_meta_key) {
            s.meta = L;
            continue;
        }
        if (!is_layer_key(key)) {
            continue;  // other non-numeric keys: provenance of other tools
        }
        if (!L.is_object()) {
            fail("%s: layer %s is not an object", origin.c_str(), key.c_str());
        }
        const auto counts = array_of<uint64_t>(L, "activation_counts", 0, origin, key, true);
        const size_t n    = counts.size();
        if (n == 0) {
            fail("%s: layer %s has no experts", origin.c_str(), key.c_str());
        }
        LayerStats ls(n);
        ls.count = counts;
        if (!L.contains("total_tokens") || !L["total_tokens"].is_number_integer() || L["total_tokens"].get<int64_t>() < 0) {
            fail("%s: layer %s: 'total_tokens' must be a non-negative integer", origin.c_str(), key.c_str());
        }
        ls.total_tokens = L["total_tokens"].get<uint64_t>();
        auto sums_or = [&](const char * sum_key, const char * mean_key, std::vector<double> & dst) {
            auto sum = array_of<double>(L, sum_key, n, origin, key, false);
            if (!sum.empty()) {
                dst = sum;
                return;
            }
            // A prototype file: rebuild the sum from the mean (exact up to float rounding).
            auto mean = array_of<double>(L, mean_key, n, origin, key, mean_key == std::string("reap"));
            for (size_t e = 0; e < mean.size(); e++) {
                dst[e] = mean[e] * double(ls.count[e]);
            }
        };
        sums_or("gate_sum", "avg_gate_weight", ls.gate_sum);
        sums_or("raw_gate_sum", "avg_raw_gate_weight", ls.raw_gate_sum);
        sums_or("ean_sum", "ean_mean", ls.ean_sum);
        sums_or("reap_sum", "reap", ls.reap_sum);
        auto sq = array_of<double>(L, "reap_sq_sum", n, origin, key, false);
        if (!sq.empty()) ls.reap_sq_sum = sq;
        auto mx = array_of<double>(L, "reap_max", n, origin, key, false);
        if (!mx.empty()) ls.reap_max = mx;
        s.layers.emplace(std::stoi(key), std::move(ls));
    }
    if (s.layers.empty()) {
        fail("%s: no layer statistics in the file", origin.c_str());
    }
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
}

}  // namespace reap
