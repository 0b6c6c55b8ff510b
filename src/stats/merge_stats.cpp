#include "stats/merge_stats.h"

#include "core/error.h"

#include <cmath>
#include <cstdint>

namespace reap {

using nlohmann::json;

void LayerStats::enable_merge_stats(uint32_t sample_per_batch) {
    router_gram.assign(count.size() * count.size(), 0.0);
    output_gram.assign(count.size() * count.size(), 0.0);
    router_gram_tokens = output_gram_tokens = 0;
    merge_sample_per_batch                  = sample_per_batch;
}

static std::vector<double> cosine_of_gram(const std::vector<double> & g, size_t n) {
    std::vector<double> c(n * n, 0.0);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            const double d = g[i * n + i] * g[j * n + j];
            c[i * n + j]   = d > 0 ? g[i * n + j] / std::sqrt(d) : 0.0;
        }
    }
    return c;
}

static void need_merge_stats(const LayerStats & L) {
    if (!L.has_merge_stats()) {
        fail(
            "the statistics have no merge statistics (router and expert-output Grams): profile with --merge-stats "
            "N");
    }
}
std::vector<double> LayerStats::router_similarity() const {
    need_merge_stats(*this);
    return cosine_of_gram(router_gram, count.size());
}
std::vector<double> LayerStats::output_similarity() const {
    need_merge_stats(*this);
    return cosine_of_gram(output_gram, count.size());
}

void merge_grams(LayerStats & into, const LayerStats & o) {
    if (into.has_merge_stats() && o.has_merge_stats()) {
        for (size_t i = 0; i < into.router_gram.size(); i++) {
            into.router_gram[i] += o.router_gram[i];
            into.output_gram[i] += o.output_gram[i];
        }
        into.router_gram_tokens += o.router_gram_tokens;
        into.output_gram_tokens += o.output_gram_tokens;
        if (into.merge_sample_per_batch != o.merge_sample_per_batch) into.merge_sample_per_batch = 0;  // mixed
    } else {
        into.router_gram.clear();  // a Gram over only part of the tokens would pass for the whole
        into.output_gram.clear();
        into.router_gram_tokens = into.output_gram_tokens = 0;
        into.merge_sample_per_batch                       = 0;
    }
}

json merge_stats_to_json(const LayerStats & L) {
    return {{"router_gram", L.router_gram},
            {"router_gram_tokens", L.router_gram_tokens},
            {"output_gram", L.output_gram},
            {"output_gram_tokens", L.output_gram_tokens},
            {"sample_per_batch", L.merge_sample_per_batch}};
}

static uint64_t merge_count(const json & m, const char * key, const std::string & origin, const std::string & il,
                            uint64_t max) {
    if (!m.contains(key) || !m[key].is_number_unsigned() || m[key].get<uint64_t>() > max) {
        fail("%s: layer %s: merge.%s must be an integer from 0 to %llu", origin.c_str(), il.c_str(), key,
             (unsigned long long) max);
    }
    return m[key].get<uint64_t>();
}

// A Gram: E x E finite numbers, symmetric up to rounding is not checked (sums in another
// order differ in the last bits), its diagonal (sums of squares) not negative.
static std::vector<double> merge_gram(const json & m, const char * key, size_t n, const std::string & origin,
                                      const std::string & il) {
    if (!m.contains(key)) fail("%s: layer %s: merge has no '%s'", origin.c_str(), il.c_str(), key);
    const json & a = m[key];
    if (!a.is_array() || a.size() != n * n) {
        fail("%s: layer %s: merge.%s must be an array of %zu x %zu numbers", origin.c_str(), il.c_str(), key, n, n);
    }
    std::vector<double> g;
    g.reserve(n * n);
    for (const auto & v : a) {
        if (!v.is_number() || !std::isfinite(v.get<double>())) {
            fail("%s: layer %s: merge.%s holds a value that is not a finite number", origin.c_str(), il.c_str(), key);
        }
        g.push_back(v.get<double>());
    }
    for (size_t i = 0; i < n; i++) {
        if (g[i * n + i] < 0) {
            fail("%s: layer %s: merge.%s has a negative diagonal entry (expert %zu)", origin.c_str(), il.c_str(), key,
                 i);
        }
    }
    return g;
}

void merge_stats_from_json(const json & m, const std::string & origin, const std::string & il, LayerStats & ls) {
    if (!m.is_object()) fail("%s: layer %s: 'merge' must be an object", origin.c_str(), il.c_str());
    const size_t n            = ls.n_expert();
    ls.router_gram            = merge_gram(m, "router_gram", n, origin, il);
    ls.output_gram            = merge_gram(m, "output_gram", n, origin, il);
    ls.router_gram_tokens     = merge_count(m, "router_gram_tokens", origin, il, ls.total_tokens);
    ls.output_gram_tokens     = merge_count(m, "output_gram_tokens", origin, il, ls.router_gram_tokens);
    ls.merge_sample_per_batch = uint32_t(merge_count(m, "sample_per_batch", origin, il, UINT32_MAX));
}

}  // namespace reap
