// The linear assignment problem: given a square n×n cost matrix, the one-to-one matching of rows
// to columns with the least total cost. Merging experts needs it to match one expert's
// intermediate neurons to another's (plan/slot_merge.h); no library on the build's platforms
// offers it in C++, so it is written here (Hungarian method with potentials, Jonker-Volgenant's
// shortest augmenting paths: O(n³) time, O(n) memory besides the matrix).
#pragma once

#include <cstdint>
#include <vector>

namespace reap {

// The assignment minimising Σ_r cost[r * n + col[r]] over the permutations col of 0..n-1, for a
// row-major n×n `cost` of finite values (any sign). Returns col (row r -> column col[r]); among
// several optimal assignments any one. n == 0 gives an empty vector. Throws reap::Error when
// cost.size() != n*n or a value is not finite.
std::vector<uint32_t> solve_linear_assignment(const std::vector<double> & cost, uint32_t n);

}  // namespace reap
