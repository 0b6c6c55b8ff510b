// Rank and set statistics the report compares runs with: Spearman's correlation on average
// ranks, the Gini coefficient of activation counts, and how far two sets of expert ids overlap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reap {

// Ranks 1..n of `v` in ascending order; tied values share the average of their ranks.
std::vector<double> average_ranks(const std::vector<double> & v);

// Spearman's rank correlation of two samples of the same length: the Pearson correlation of
// their average ranks (so ties are handled exactly). NaN when a side has no ranking at all
// (fewer than 2 values, or all values equal).
double spearman(const std::vector<double> & a, const std::vector<double> & b);

// Gini coefficient of non-negative values: 0 when all are equal (or all zero), (n-1)/n when one
// holds everything. Throws reap::Error on a negative value.
double gini(const std::vector<double> & v);

// Two ascending sets of ids side by side.
struct SetOverlap {
    size_t                common   = 0;  // |A∩B|
    size_t                in_union = 0;  // |A∪B|
    std::vector<uint32_t> only_a, only_b;
};

SetOverlap set_overlap(const std::vector<uint32_t> & a, const std::vector<uint32_t> & b);

}  // namespace reap
