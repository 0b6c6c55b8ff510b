// Writing GGUF files: the one place that lays out metadata, tensor data and padding, for every
// command that writes a model (prune, synth). Tensor data is streamed: a caller hands over each
// tensor's bytes in pieces, in the order of the gguf context, and the writer pads each tensor to
// the alignment and checks that its size is what the metadata promised, so no command can write
// a file that does not re-open.
#pragma once

#include "core/atomic_file.h"

#include "ggml.h"
#include "gguf.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace reap {

struct GgufContextFree {
    void operator()(gguf_context * c) const { gguf_free(c); }
};
struct GgmlContextFree {
    void operator()(ggml_context * c) const { ggml_free(c); }
};
using GgufContextPtr = std::unique_ptr<gguf_context, GgufContextFree>;
using GgmlContextPtr = std::unique_ptr<ggml_context, GgmlContextFree>;

// A ggml context for tensor descriptions only (no data), room for `n_tensors`.
GgmlContextPtr tensor_meta_context(size_t n_tensors);

// One GGUF file being written. The file appears under its name only on commit(); until then
// (and if commit() is never reached) it is a temporary file next to it.
class GgufFileWriter {
public:
    // Creates the file and writes `ctx`'s metadata block (header, key-value pairs, tensor infos).
    // `ctx` must outlive the writer.
    GgufFileWriter(const std::string & path, const gguf_context * ctx);

    uint64_t meta_size() const { return meta_size_; }

    // The next `n` bytes of the current tensor's data.
    void write(const void * data, size_t n);
    // Ends the current tensor: checks that its size matches the metadata and pads to the
    // alignment. Returns the padding written.
    size_t end_tensor();
    // Checks that every tensor was written and syncs the file to disk (all that can fail for want
    // of space); commit() is then only the rename.
    void finish();
    // finish(), then renames the file into place.
    void commit();

private:
    AtomicFile           file_;
    const gguf_context * ctx_;
    std::string          path_;
    size_t               align_;
    uint64_t             meta_size_    = 0;
    int64_t              tensor_       = 0;  // index of the tensor being written
    uint64_t             tensor_bytes_ = 0;  // its bytes so far
};

// Files that must appear together (the parts of a split set): every one is finished first, then
// all are renamed, so an error (a full disk, a failed fsync) leaves none of them in place. The
// renames run back to back; a caller holding a StopSignalGuard is not stopped between them.
void commit_together(const std::vector<GgufFileWriter *> & files);

// A new value of k_split_set_id_key (gguf/gguf_file.h) for one write of a split set:
// 32 random hex digits (the same length every time, so a dry run's sizes are the real ones).
std::string new_split_set_id();

// A model written as several files, as llama.cpp's gguf-split does it: a new file when the next
// tensor would pass `split_max` bytes of tensor data (each file holds at least one tensor); every
// file carries split.no, split.count and split.tensors.count and a new k_split_set_id_key, the
// first one all other keys too.
struct GgufSplitLayout {
    std::vector<GgufContextPtr> files;    // empty: a single file, the whole context
    std::vector<size_t>         file_of;  // per tensor of the whole context: its file index

    size_t n_files() const { return files.empty() ? 1 : files.size(); }
};

// Lays out `whole` (key-value pairs and tensors, described in `tensors`) over split files;
// split_max 0: one file.
GgufSplitLayout split_like_gguf_split(const gguf_context * whole, ggml_context * tensors, uint64_t split_max);

// The names of the files of a model written to `output`: itself, or for several files
// "<output minus .gguf>-0000k-of-0000n.gguf".
std::vector<std::string> split_file_names(const std::string & output, size_t n_files);

// Size in bytes of the files of `whole` laid out as `split`: metadata blocks plus padded data.
uint64_t gguf_output_size(const gguf_context * whole, const GgufSplitLayout & split);

}  // namespace reap
