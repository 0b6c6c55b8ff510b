#include "plan/slot_merge.h"

#include "core/error.h"
#include "plan/linear_assignment.h"

#include <algorithm>

namespace reap {

namespace {

// x·y in float with eight independent partial sums, which the compiler vectorises (a strict
// left-to-right sum cannot be); the costs only need to rank matches.
float dot(const float * x, const float * y, int64_t n) {
    float   s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i    = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; k++)
            s[k] += x[i + k] * y[i + k];
    }
    float t = 0;
    for (; i < n; i++)
        t += x[i] * y[i];
    return t + ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// One row per neuron: [gate row; up row; down column], so the costs read contiguous memory.
std::vector<float> neuron_features(const ExpertFfn & f, int64_t n_ff, int64_t n_embd, int64_t width) {
    std::vector<float> x(size_t(n_ff * width));
    for (int64_t a = 0; a < n_ff; a++) {
        float * row = &x[size_t(a * width)];
        if (f.gate) row = std::copy(f.gate + a * n_embd, f.gate + (a + 1) * n_embd, row);
        row = std::copy(f.up + a * n_embd, f.up + (a + 1) * n_embd, row);
        for (int64_t d = 0; d < n_embd; d++)
            row[d] = f.down[d * n_ff + a];
    }
    return x;
}

void check_permutation(const std::vector<uint32_t> & p, int64_t n) {
    if (int64_t(p.size()) != n) fail("merge: a permutation of %zu neurons for %lld", p.size(), (long long) n);
    std::vector<char> seen(size_t(n), 0);
    for (uint32_t v : p) {
        if (v >= n || seen[v]) fail("merge: the neuron map is not a permutation of 0..%lld", (long long) n - 1);
        seen[v] = 1;
    }
}

}  // namespace

std::vector<uint32_t> align_neurons(const ExpertFfn & centroid, const ExpertFfn & member, int64_t n_ff,
                                    int64_t n_embd) {
    if (!centroid.up || !centroid.down || !member.up || !member.down || (!centroid.gate != !member.gate)) {
        fail("merge: aligning two experts needs the up and down weights of both (and a gate in both or neither)");
    }
    const int64_t            width = (centroid.gate ? 3 : 2) * n_embd;
    const std::vector<float> xc    = neuron_features(centroid, n_ff, n_embd, width);
    const std::vector<float> xm    = neuron_features(member, n_ff, n_embd, width);
    // ‖x − y‖² = ‖x‖² + ‖y‖² − 2 x·y: one dot product per pair.
    std::vector<double> nc(static_cast<size_t>(n_ff)), nm(static_cast<size_t>(n_ff));
    for (int64_t a = 0; a < n_ff; a++) {
        nc[size_t(a)] = dot(&xc[size_t(a * width)], &xc[size_t(a * width)], width);
        nm[size_t(a)] = dot(&xm[size_t(a * width)], &xm[size_t(a * width)], width);
    }
    std::vector<double> cost(size_t(n_ff * n_ff));
    for (int64_t a = 0; a < n_ff; a++) {
        for (int64_t b = 0; b < n_ff; b++) {
            const double d             = dot(&xc[size_t(a * width)], &xm[size_t(b * width)], width);
            cost[size_t(a * n_ff + b)] = std::max(0.0, nc[size_t(a)] + nm[size_t(b)] - 2 * d);
        }
    }
    return solve_linear_assignment(cost, uint32_t(n_ff));
}

std::vector<float> combine(FfAxis axis, int64_t n_rows, int64_t n_cols, const std::vector<const float *> & slices,
                           const std::vector<double> & weights, const std::vector<std::vector<uint32_t>> & perms) {
    if (slices.empty() || weights.size() != slices.size() || perms.size() != slices.size()) {
        fail("merge: %zu slices, %zu weights and %zu permutations for one slot", slices.size(), weights.size(),
             perms.size());
    }
    if (axis == FfAxis::gate_up_rows && n_rows % 2 != 0) {
        fail("merge: a fused gate_up slice of %lld rows (not two halves)", (long long) n_rows);
    }
    const int64_t      n_neurons = axis == FfAxis::rows ? n_rows : axis == FfAxis::gate_up_rows ? n_rows / 2 : n_cols;
    std::vector<float> out(size_t(n_rows * n_cols), 0.0f);
    for (size_t k = 0; k < slices.size(); k++) {
        const float *                 s        = slices[k];
        const float                   w        = float(weights[k]);
        const std::vector<uint32_t> & p        = perms[k];
        const bool                    identity = p.empty() || axis == FfAxis::none;
        if (!identity) check_permutation(p, n_neurons);
        for (int64_t r = 0; r < n_rows; r++) {
            int64_t from_row = r;
            if (!identity && axis == FfAxis::rows) from_row = p[size_t(r)];
            if (!identity && axis == FfAxis::gate_up_rows) {
                from_row = r < n_neurons ? int64_t(p[size_t(r)]) : n_neurons + p[size_t(r - n_neurons)];
            }
            const float * src = s + from_row * n_cols;
            float *       dst = &out[size_t(r * n_cols)];
            if (!identity && axis == FfAxis::columns) {
                for (int64_t c = 0; c < n_cols; c++)
                    dst[c] += w * src[p[size_t(c)]];
            } else {
                for (int64_t c = 0; c < n_cols; c++)
                    dst[c] += w * src[c];
            }
        }
    }
    return out;
}

const SlotPermutations::Perms & SlotPermutations::get(int layer, uint32_t slot,
                                                      const std::function<Perms()> & compute) {
    if (layer_ != layer) {
        perms_.clear();
        layer_ = layer;
    }
    auto it = perms_.find(slot);
    if (it != perms_.end()) return it->second;
    return perms_.emplace(slot, compute()).first->second;
}

}  // namespace reap
