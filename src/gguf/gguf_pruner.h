// `reap prune` on a GGUF (the writer beside the reader; behind gguf/gguf_model.h): rewrite a GGUF
// without the dropped experts. Streaming: tensor data goes through a fixed-size buffer, so memory
// does not grow with the model. Key-value pairs and non-expert tensors are copied byte for byte;
// expert tensors keep the kept experts' slices (the expert axis is ggml's outermost dimension, so
// a slice is a contiguous run), quantized blocks included, in the original order. A merged plan's
// computed slots are made instead by gguf/gguf_slot_merge.h (same type and size as a copied slice).
#pragma once

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "gguf/moe_layout.h"
#include "plan/model.h"

#include <string>
#include <vector>

namespace reap {

// The slices along the outer axis that the pruned `e` keeps under `plan`, ascending: the layer's
// kept experts, or for GroveMoE's adjugate *_chexps the adjugate experts of the kept groups. The
// one rule, for the tensors and for what is cut with them (gguf/imatrix_prune.h).
std::vector<uint32_t> kept_slices(const MoeLayout & layout, const ExpertTensor & e, const Plan & plan);

// Exact size in bytes of what `plan` would produce (all split files together): the one owner of
// a GGUF's size after pruning (inspect and --dry-run, through GgufModel::pruned_size).
uint64_t pruned_file_size(const GgufFile & in, const MoeLayout & layout, const Plan & plan,
                          uint64_t split_max_bytes = 0);

// The file names a job writes: the output itself, or its split names when it is split.
std::vector<std::string> pruned_file_names(const GgufFile & in, const MoeLayout & layout, const PruneJob & job);

// Writes every job's output in a single pass over the input (each input byte read once).
// Outputs are written to temporary files and renamed into place only when complete.
// Throws reap::Error (unknown expert tensors, expert-id tensors that cannot be remapped, an
// output that is the input, I/O errors); no partial output is left under a final name.
// `also`: files finished elsewhere that appear with the outputs (committed together: a pruned
// model's importance matrix).
void prune_model(const GgufFile & in, const MoeLayout & layout, const std::vector<PruneJob> & jobs,
                 bool show_progress = true, const std::vector<GgufFileWriter *> & also = {});

}  // namespace reap
