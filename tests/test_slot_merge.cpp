// The arithmetic of computed slots (plan/linear_assignment.h, plan/slot_merge.h): the assignment
// solver against brute force, alignment recovering a planted permutation, a hand-computed combine.
#include "core/error.h"
#include "plan/linear_assignment.h"
#include "plan/slot_merge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

using namespace reap;

namespace {

double total(const std::vector<double> & cost, uint32_t n, const std::vector<uint32_t> & col) {
    double s = 0;
    for (uint32_t r = 0; r < n; r++)
        s += cost[size_t(r) * n + col[r]];
    return s;
}

}  // namespace

TEST(LinearAssignment, MatchesBruteForceOnSmallRandomMatrices) {
    std::mt19937                           rng(7);
    std::uniform_real_distribution<double> u(-5, 5);
    std::uniform_int_distribution<int>     small(0, 3);  // many ties
    for (uint32_t n = 0; n <= 7; n++) {
        for (int trial = 0; trial < 20; trial++) {
            std::vector<double> cost(size_t(n) * n);
            for (auto & c : cost)
                c = trial % 2 ? u(rng) : double(small(rng));
            const std::vector<uint32_t> col = solve_linear_assignment(cost, n);
            ASSERT_EQ(col.size(), n);
            std::vector<uint32_t> sorted = col;
            std::sort(sorted.begin(), sorted.end());
            for (uint32_t i = 0; i < n; i++)
                ASSERT_EQ(sorted[i], i) << "not a permutation";
            std::vector<uint32_t> p(n);
            std::iota(p.begin(), p.end(), 0u);
            double best = n == 0 ? 0 : 1e300;
            do {
                best = std::min(best, total(cost, n, p));
            } while (std::next_permutation(p.begin(), p.end()));
            EXPECT_NEAR(total(cost, n, col), best, 1e-9) << "n=" << n << " trial=" << trial;
        }
    }
}

TEST(LinearAssignment, RefusesBadInput) {
    EXPECT_THROW(solve_linear_assignment({1, 2, 3}, 2), Error);
    EXPECT_THROW(solve_linear_assignment({1, 2, 3, std::nan("")}, 2), Error);
}

TEST(SlotMerge, AlignRecoversAPlantedPermutationOfACopiedExpert) {
    const int64_t                   n_ff = 48, n_embd = 32;
    std::mt19937                    rng(3);
    std::normal_distribution<float> g(0, 1);
    std::vector<float>              gate(size_t(n_ff * n_embd)), up(gate.size()), down(gate.size());
    for (auto * v : {&gate, &up, &down})
        for (auto & x : *v)
            x = g(rng);
    std::vector<uint32_t> planted(static_cast<size_t>(n_ff));
    std::iota(planted.begin(), planted.end(), 0u);
    std::shuffle(planted.begin(), planted.end(), rng);
    // member neuron planted[a] is centroid neuron a
    std::vector<float> mg(gate.size()), mu(up.size()), md(down.size());
    for (int64_t a = 0; a < n_ff; a++) {
        const int64_t b = planted[size_t(a)];
        std::copy(&gate[size_t(a * n_embd)], &gate[size_t((a + 1) * n_embd)], &mg[size_t(b * n_embd)]);
        std::copy(&up[size_t(a * n_embd)], &up[size_t((a + 1) * n_embd)], &mu[size_t(b * n_embd)]);
        for (int64_t d = 0; d < n_embd; d++)
            md[size_t(d * n_ff + b)] = down[size_t(d * n_ff + a)];
    }
    const ExpertFfn c{gate.data(), up.data(), down.data()}, m{mg.data(), mu.data(), md.data()};
    EXPECT_EQ(align_neurons(c, m, n_ff, n_embd), planted);
    // without a gate too (up/down only FFNs)
    EXPECT_EQ(align_neurons({nullptr, up.data(), down.data()}, {nullptr, mu.data(), md.data()}, n_ff, n_embd), planted);
    // the aligned member combined with the centroid gives the centroid back
    const auto back = combine(FfAxis::columns, n_embd, n_ff, {down.data(), md.data()}, {0.5, 0.5}, {{}, planted});
    for (size_t i = 0; i < back.size(); i++)
        ASSERT_FLOAT_EQ(back[i], down[i]);
    EXPECT_THROW(align_neurons(c, {nullptr, mu.data(), md.data()}, n_ff, n_embd), Error);
}

TEST(SlotMerge, CombineByHand) {
    // 3 neurons; centroid A, member B with permutation p = {2, 0, 1}: aligned B[a] = B[p[a]].
    const std::vector<uint32_t> p = {2, 0, 1};
    // rows: 3 rows of 2
    const std::vector<float> a_rows = {1, 2, 3, 4, 5, 6}, b_rows = {10, 20, 30, 40, 50, 60};
    EXPECT_EQ(combine(FfAxis::rows, 3, 2, {a_rows.data(), b_rows.data()}, {0.75, 0.25}, {{}, p}),
              (std::vector<float>{0.75f * 1 + 0.25f * 50, 0.75f * 2 + 0.25f * 60, 0.75f * 3 + 0.25f * 10,
                                  0.75f * 4 + 0.25f * 20, 0.75f * 5 + 0.25f * 30, 0.75f * 6 + 0.25f * 40}));
    // columns: 2 rows of 3 neurons
    const std::vector<float> a_cols = {1, 2, 3, 4, 5, 6}, b_cols = {10, 20, 30, 40, 50, 60};
    EXPECT_EQ(combine(FfAxis::columns, 2, 3, {a_cols.data(), b_cols.data()}, {0.5, 0.5}, {{}, p}),
              (std::vector<float>{0.5f * 1 + 0.5f * 30, 0.5f * 2 + 0.5f * 10, 0.5f * 3 + 0.5f * 20,
                                  0.5f * 4 + 0.5f * 60, 0.5f * 5 + 0.5f * 40, 0.5f * 6 + 0.5f * 50}));
    // fused gate_up: 6 rows of 1 (gate 0..2, up 3..5), the same permutation on each half
    EXPECT_EQ(combine(FfAxis::gate_up_rows, 6, 1, {a_rows.data(), b_rows.data()}, {0.5, 0.5}, {{}, p}),
              (std::vector<float>{0.5f * 1 + 0.5f * 30, 0.5f * 2 + 0.5f * 10, 0.5f * 3 + 0.5f * 20,
                                  0.5f * 4 + 0.5f * 60, 0.5f * 5 + 0.5f * 40, 0.5f * 6 + 0.5f * 50}));
    // none (a down bias): not permuted
    EXPECT_EQ(combine(FfAxis::none, 1, 3, {a_rows.data(), b_rows.data()}, {0.5, 0.5}, {{}, p}),
              (std::vector<float>{5.5f, 11, 16.5f}));
    EXPECT_THROW(combine(FfAxis::rows, 3, 2, {a_rows.data(), b_rows.data()}, {0.5, 0.5}, {{}, {0, 0, 1}}), Error);
    EXPECT_THROW(combine(FfAxis::rows, 3, 2, {a_rows.data(), b_rows.data()}, {0.5}, {{}, p}), Error);
}
