// `reap prune` on a GGUF (the writer beside the reader; behind gguf/gguf_model.h): rewrite a GGUF
// without the dropped experts. Streaming: tensor data goes through a fixed-size buffer, so memory
// does not grow with the model. Key-value pairs and non-expert tensors are copied byte for byte;
// expert tensors keep the kept experts' slices (the expert axis is ggml's outermost dimension, so
// a slice is a contiguous run), quantized blocks included, in the original order.
#pragma once

#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"
#include "prune/model.h"

#include <string>
#include <vector>

namespace reap {

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
void prune_model(const GgufFile & in, const MoeLayout & layout, const std::vector<PruneJob> & jobs,
                 bool show_progress = true);

}  // namespace reap
