#include "report/rank_stats.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>

namespace reap {

std::vector<double> average_ranks(const std::vector<double> & v) {
    std::vector<size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < idx.size();) {
        size_t j = i;
        while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) {
            j++;
        }
        const double avg = double(i + j) / 2.0 + 1.0;  // positions i..j hold ranks i+1..j+1
        for (size_t k = i; k <= j; k++) {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    return r;
}

double spearman(const std::vector<double> & a, const std::vector<double> & b) {
    if (a.size() != b.size()) {
        fail("spearman: samples of different lengths (%zu and %zu)", a.size(), b.size());
    }
    const size_t n = a.size();
    if (n < 2) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    const auto   ra = average_ranks(a), rb = average_ranks(b);
    const double mean = double(n + 1) / 2.0;  // the mean rank, with or without ties
    double       sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = ra[i] - mean, y = rb[i] - mean;
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if (saa == 0 || sbb == 0) {
        return std::numeric_limits<double>::quiet_NaN();  // one side is all ties: no order to compare
    }
    return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

double gini(const std::vector<double> & v) {
    for (double x : v) {
        if (!(x >= 0)) fail("gini: values must be non-negative (got %g)", x);
    }
    std::vector<double> s(v);
    std::sort(s.begin(), s.end());
    const double n     = double(s.size());
    const double total = std::accumulate(s.begin(), s.end(), 0.0);
    if (s.empty() || total == 0) {
        return 0.0;
    }
    // G = sum_i (2i - n - 1) x_(i) / (n * sum x), i = 1..n over the sorted values. The weights
    // sum to zero, so equal values give exactly 0 up to rounding.
    double acc = 0;
    for (size_t i = 0; i < s.size(); i++) {
        acc += (2.0 * double(i + 1) - n - 1.0) * s[i];
    }
    return std::max(0.0, acc / (n * total));
}

SetOverlap set_overlap(const std::vector<uint32_t> & a, const std::vector<uint32_t> & b) {
    SetOverlap            o;
    std::vector<uint32_t> both, any;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(any));
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(o.only_a));
    std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(o.only_b));
    o.common   = both.size();
    o.in_union = any.size();
    return o;
}

}  // namespace reap
