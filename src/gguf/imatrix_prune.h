// `reap prune --imatrix` on a GGUF: llama.cpp's importance matrix (gguf/imatrix_file.h) checked
// against the model it is meant for, cut with the model, and the per-expert scores of the
// imatrix criteria (stats/criteria.h) read from it and the model's down projections.
#pragma once

#include "gguf/gguf_file.h"
#include "gguf/imatrix_file.h"
#include "gguf/moe_layout.h"
#include "plan/plan.h"
#include "stats/expert_stats.h"

#include <string>

namespace reap {

// Refuses (reap::Error naming `path`) an importance matrix of another model: an entry that names
// no tensor of `f`; for an expert tensor a width other than its ne[0] or a number of matrices
// other than its expert count (ne[2]); for any other weight a size other than the ne[0] x ne[2]
// values llama-quantize takes (a 3-D dense weight is one matrix of ne[0] x ne[2] columns, as
// llama-imatrix files it). Before anything is written.
void check_imatrix_for_model(const Imatrix & m, const std::string & path, const GgufFile & f, const MoeLayout & layout);

// The importance matrix of the model `plan` makes: every entry of an expert tensor cut to the
// slices the pruned tensor keeps, in its order (gguf_pruner's kept_slices: the kept experts, or
// GroveMoE's adjugate experts of the kept groups); every other entry, the datasets and the chunk
// keys as they are. `m` has passed check_imatrix_for_model.
Imatrix prune_imatrix(const Imatrix & m, const MoeLayout & layout, const Plan & plan);

// The imatrix criteria's sums (LayerStats::imatrix_sum) per regular MoE layer: for expert e,
// S_e = Σ_j ‖W_down_e[:, j]‖² · in_sum2_e[j] over the input channels j of ffn_down_exps (ne[0]),
// the column norms read from the weights dequantized (ggml's to_float), in_sum2 from the entry
// of `blk.<il>.ffn_down_exps.weight`: an estimate of Σ‖W_down_e x‖² over the expert's routed
// tokens. count = the entry's counts; total_tokens = Σ counts / experts used per token (each
// token counts once per selected expert). Throws naming `path` when a layer's entry is missing.
ExpertStats imatrix_expert_stats(const Imatrix & m, const std::string & path, const GgufFile & f,
                                 const MoeLayout & layout);

}  // namespace reap
