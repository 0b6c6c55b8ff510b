// The computed (merged) slots of an HF prune (hf/hf_pruner.h writes the folder): a computed
// slot's per-expert tensor ("<block>.experts.<slot>.gate_proj.weight", ...) is made from its
// sources' tensors read as floats (F32, F16, BF16: core/tensor_codec.h), aligned and combined
// (plan/slot_merge.h: permutations from the layer's gate/up/down weights, once per layer, slot
// and member) and written back in the source dtype (BF16 and F16 rounded to nearest even), so
// the tensor keeps its dtype, shape and size. Router rows and selection biases of a computed slot
// are the centroid's (copied). FP8, MXFP4 or any other dtype in a computed slot, and fused expert
// tensors of a merged layer, are refused before anything is written.
#pragma once

#include "hf/hf_checkpoint.h"
#include "hf/hf_layout.h"
#include "plan/plan.h"
#include "plan/slot_merge.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

// Refuses, naming the folder and the tensor, a plan whose computed slots `c` cannot give: a fused
// expert tensor in a merged layer, a per-expert tensor that is not a gate/up/down weight or bias
// (FP8's weight_scale_inv, ...), a dtype other than F32/F16/BF16, a merged layer without the up
// and down weights alignment needs.
void check_hf_computed_slots(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan);

// Makes one plan's computed per-expert tensors; a layer's permutations are kept until another
// layer's are needed.
class HfSlotMerger {
public:
    HfSlotMerger(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan);

    // The bytes of slot `slot`'s tensor made like input tensor `i` (a per-expert tensor of a
    // computed slot's layer): its size and dtype.
    std::vector<uint8_t> tensor(size_t i, uint32_t slot);

private:
    const std::vector<std::vector<uint32_t>> & permutations(int layer, uint32_t slot);
    std::vector<float>                         read_floats(const std::string & name) const;
    std::string                                name_of(int layer, uint32_t expert, const std::string & suffix) const;

    const HfCheckpoint &          c_;
    const HfLayout &              layout_;
    const Plan &                  plan_;
    std::map<std::string, size_t> index_;   // tensor name -> index into c_.tensors
    std::map<int, std::string>    prefix_;  // layer -> "<block>.experts."
    SlotPermutations              perms_;
};

}  // namespace reap
