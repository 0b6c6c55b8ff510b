// The arithmetic of a computed (merged) slot, format-free: the writers (gguf/gguf_pruner.h,
// hf/hf_pruner.h) read and dequantize the sources' slices, this aligns and combines them, the
// writers quantize and write the result.
//
// A slot of sources {(e_0, w_0), ..., (e_k, w_k)} (plan/plan.h; e_0 the centroid) is, per tensor
// of the expert FFN, Σ_k w_k · aligned_k where aligned_k is expert e_k's slice with its
// intermediate (n_ff) neurons permuted onto the centroid's. An FFN's output does not change when
// its intermediate neurons are permuted together in gate, up and down, but two experts trained
// apart hold their features in unrelated orders, so averaging without matching blurs them.
// align_neurons matches them by weights (ZipIt / REAM's weight matching): the permutation that
// minimises the squared Euclidean distance between each centroid neuron's concatenated weights
// [gate row; up row; down column] and its partner's, an n_ff × n_ff linear assignment
// (plan/linear_assignment.h: O(n_ff³) plus O(n_ff² · 3 n_embd) for the costs). Alignment "none":
// identity permutations.
//
// The router row and selection bias of a computed slot are the centroid's, never combined
// (REAM: the merged expert answers for the centroid's share of the routing).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace reap {

// Where a tensor's slice keeps the intermediate neurons, i.e. what a permutation moves.
// Slices are row-major: n_rows rows of n_cols values (ggml's ne1 × ne0, PyTorch's [rows, cols]).
enum class FfAxis {
    rows,          // gate, up (n_ff rows of n_embd) and their biases (n_ff rows of 1)
    gate_up_rows,  // fused gate_up (2·n_ff rows: gate's, then up's) and its bias: one permutation per half
    columns,       // down (n_embd rows of n_ff)
    none,          // down's bias (n_embd values): along the output, not permuted
};

// One expert's dequantized FFN weights (pointers into the caller's buffers).
struct ExpertFfn {
    const float * gate = nullptr;  // n_ff rows of n_embd; null where the FFN has no gate (NemotronH)
    const float * up   = nullptr;  // n_ff rows of n_embd
    const float * down = nullptr;  // n_embd rows of n_ff
};

// The permutation p matching `member`'s neuron p[a] to `centroid`'s neuron a, minimising
// Σ_a ‖[gate_c[a]; up_c[a]; down_c[:,a]] − [gate_m[p[a]]; up_m[p[a]]; down_m[:,p[a]]]‖² (the parts
// present in both). A member equal to the centroid up to a permutation gets that permutation
// back exactly. Throws reap::Error when up or down is missing, or gate is in one only.
std::vector<uint32_t> align_neurons(const ExpertFfn & centroid, const ExpertFfn & member, int64_t n_ff, int64_t n_embd);

// A computed slot's slice of one tensor: Σ_k weights[k] · slices[k] with slices[k]'s neurons
// permuted by perms[k] along `axis` (aligned[a] = slice[perms[k][a]]; an empty permutation is the
// identity, as is every one along FfAxis::none). Every slice is n_rows × n_cols floats; a
// permutation's length must be the neuron count the axis implies (n_rows, n_rows / 2 or n_cols).
// Throws reap::Error on mismatched sizes or a permutation that is not one.
std::vector<float> combine(FfAxis axis, int64_t n_rows, int64_t n_cols, const std::vector<const float *> & slices,
                           const std::vector<double> & weights, const std::vector<std::vector<uint32_t>> & perms);

// The neuron permutations of one layer's computed slots for a writer that streams tensor by
// tensor: each slot's computed once (by the writer's `compute`, from its format's weights) and
// kept until the writer moves to another layer, so a layer's gate, up and down are permuted alike.
class SlotPermutations {
public:
    using Perms = std::vector<std::vector<uint32_t>>;  // [k]: source k's neurons onto the centroid's (empty: identity)
    const Perms & get(int layer, uint32_t slot, const std::function<Perms()> & compute);

private:
    int                       layer_ = -1;
    std::map<uint32_t, Perms> perms_;
};

}  // namespace reap
