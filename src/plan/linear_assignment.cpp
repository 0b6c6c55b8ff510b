#include "plan/linear_assignment.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace reap {

std::vector<uint32_t> solve_linear_assignment(const std::vector<double> & cost, uint32_t n) {
    if (cost.size() != size_t(n) * n) {
        fail("linear assignment: a %u x %u cost matrix needs %zu values, got %zu", n, n, size_t(n) * n, cost.size());
    }
    for (double c : cost) {
        if (!std::isfinite(c)) fail("linear assignment: a cost is not finite");
    }
    // Rows are added one at a time; each addition finds the shortest augmenting path from the new
    // row over reduced costs (cost - u[row] - v[col], kept >= 0 by the potentials u, v) with
    // Dijkstra's scan over the columns, then flips the path. Indices are 1-based: column 0 is the
    // virtual start of each path, holding the row being added.
    const double          inf = std::numeric_limits<double>::infinity();
    std::vector<double>   u(n + 1, 0), v(n + 1, 0), min_to(n + 1);
    std::vector<uint32_t> row_of(n + 1, 0), prev(n + 1, 0);  // row_of[col]: its row (0: free)
    std::vector<char>     used(n + 1);
    for (uint32_t r = 1; r <= n; r++) {
        row_of[0]    = r;
        uint32_t col = 0;
        std::fill(min_to.begin(), min_to.end(), inf);
        std::fill(used.begin(), used.end(), 0);
        do {
            used[col]           = 1;
            const uint32_t row  = row_of[col];
            double         best = inf;
            uint32_t       next = 0;
            for (uint32_t j = 1; j <= n; j++) {
                if (used[j]) continue;
                const double reduced = cost[size_t(row - 1) * n + (j - 1)] - u[row] - v[j];
                if (reduced < min_to[j]) {
                    min_to[j] = reduced;
                    prev[j]   = col;
                }
                if (min_to[j] < best) {
                    best = min_to[j];
                    next = j;
                }
            }
            for (uint32_t j = 0; j <= n; j++) {
                if (used[j]) {
                    u[row_of[j]] += best;
                    v[j] -= best;
                } else {
                    min_to[j] -= best;
                }
            }
            col = next;
        } while (row_of[col] != 0);
        do {  // flip the path back to the start
            const uint32_t p = prev[col];
            row_of[col]      = row_of[p];
            col              = p;
        } while (col != 0);
    }
    std::vector<uint32_t> col_of(n);
    for (uint32_t j = 1; j <= n; j++)
        col_of[row_of[j] - 1] = j - 1;
    return col_of;
}

}  // namespace reap
