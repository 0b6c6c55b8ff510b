// `reap prune` on a Hugging Face folder (behind hf/hf_model.h): the same plans as for GGUF, applied to the safetensors
// checkpoint. Streaming: every input tensor is read once (whatever the number of outputs) and
// copied raw (no dtype conversion) through copy_file_range or a fixed buffer, so memory does not
// grow with the model; shards are written as they fill. Per-expert tensors of kept experts are
// renumbered 0..k-1 in their original order; fused and router tensors keep the kept slices of
// their expert axis; a merged plan's computed slots are made by hf/hf_slot_merge.h. Each output folder is written as a temporary folder beside it and renamed
// into place when complete: config.json with the expert count lowered, a new index, every other
// file of the input, and reap_prune.json (kept ids per layer and provenance).
#pragma once

#include "hf/hf_checkpoint.h"
#include "hf/hf_layout.h"
#include "hf/hf_pruning_record.h"
#include "plan/model.h"

#include <string>
#include <vector>

namespace reap {

// Exact bytes of the weight files (shards and their padded headers) `plan` would produce: the one
// owner of an HF folder's size after pruning (inspect and --dry-run, through HfModel::pruned_size).
uint64_t hf_pruned_size(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan);

// Writes every job's output folder in one pass over the input. Throws reap::Error (an output that
// exists or is the input, I/O errors); no output folder is left behind on failure.
void prune_hf(const HfCheckpoint & c, const HfLayout & layout, const std::vector<PruneJob> & jobs,
              bool show_progress = true);

}  // namespace reap
