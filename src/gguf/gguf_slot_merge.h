// The computed (merged) slots of a GGUF prune (gguf/gguf_pruner.h writes the file): a computed
// slot's slice of a per-expert tensor is made by dequantizing each source's slice
// (core/tensor_codec.h), aligning and combining them (plan/slot_merge.h: the neuron permutations
// come from the layer's gate, up and down weights, once per layer, slot and member), and
// quantizing the result back to the tensor's own type, with the importance matrix's row of the
// centroid where the job has one. The slice keeps the type and shape of a copied one, so a
// merged file weighs what a pruned one does. The router rows and selection biases of a computed
// slot are the centroid's (copied: plan/slot_merge.h's rule); a one-source slot is copied raw.
#pragma once

#include "gguf/gguf_file.h"
#include "gguf/imatrix_file.h"
#include "gguf/moe_layout.h"
#include "plan/plan.h"
#include "plan/slot_merge.h"

#include <cstdint>
#include <map>
#include <vector>

namespace reap {

// Whether the slices of expert tensor `e` are computed for a computed slot (the expert FFN's
// weights and biases), as opposed to the centroid's copied (router rows, selection biases).
bool computed_per_slot(const ExpertTensor & e);

// Refuses, before anything is written, a plan whose computed slots this file cannot make: an
// expert tensor of a merged layer that is not the FFN's gate/up/down/gate_up weight or bias
// (per-expert scales, GroveMoE's adjugate experts), a type that cannot be read as floats or
// written back (`with_imatrix`: the job has an importance matrix, which some types need), a
// layer without the up and down weights alignment needs. Names the file and the tensor.
void check_computed_slots(const GgufFile & in, const MoeLayout & layout, const Plan & plan, bool with_imatrix);

// Makes the computed slots' slices of one plan's output. The permutations of a layer are
// computed at its first tensor and kept until another layer's are needed.
class GgufSlotMerger {
public:
    // `imatrix`: the job's importance matrix (or null), outliving the merger.
    GgufSlotMerger(const GgufFile & in, const MoeLayout & layout, const Plan & plan, const Imatrix * imatrix)
        : in_(in), layout_(layout), plan_(plan), imatrix_(imatrix) {}

    // The bytes of slot `slot`'s slice of expert tensor `e` (a computed slot; e.slice_bytes bytes).
    std::vector<uint8_t> slice(const ExpertTensor & e, uint32_t slot);

private:
    const std::vector<std::vector<uint32_t>> & permutations(int layer, uint32_t slot);
    std::vector<float>                         read_floats(const ExpertTensor & e, uint32_t expert) const;

    const GgufFile &  in_;
    const MoeLayout & layout_;
    const Plan &      plan_;
    const Imatrix *   imatrix_;
    SlotPermutations  perms_;
};

}  // namespace reap
