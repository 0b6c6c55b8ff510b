// The importance matrix (gguf/imatrix_file.h) collected from the profile's own decode, by the
// rules of llama-imatrix (tools/imatrix/imatrix.cpp) so the file equals its file for the same
// tokens in the same micro-batches:
//   - every MUL_MAT_ID (expert tensors): per selected expert of each token, Σ x² of the row of
//     src1 that expert multiplied, and a count per expert;
//   - a MUL_MAT whose weight is a layer's ("blk.*"), with an F32 input of at least 16 rows (its
//     threshold: smaller micro-batches are skipped): Σ x² per column over the rows, one count
//     per row (per matrix of a 3-D weight, whose matrices lie side by side in the one entry);
//   - weight names with a backend's decoration ("CUDA0#blk.0.attn_k.weight#0") undone.
// Sums are kept in double (llama-imatrix keeps float; the difference is well inside 1e-4).
// An input not in host memory is copied to the host first (as llama-imatrix does).
#pragma once

#include "gguf/imatrix_file.h"

#include "ggml.h"

#include <string>
#include <vector>

namespace reap {

class ImatrixCollector {
public:
    // Whether `t` is a node whose data the collector reads (the scheduler's ask).
    static bool wants(const ggml_tensor * t);
    // Whether `t` is a matrix multiplication of the kind collected whatever its batch size: the
    // graph's order of these nodes is learnt from a one-token decode, where wants() declines the
    // dense ones.
    static bool collects_kind(const ggml_tensor * t);
    // The weight name an entry is filed under.
    static std::string weight_name(const ggml_tensor * t);

    // Adds the node's input (call with the data of a node wants() accepted).
    void collect(const ggml_tensor * t);

    // The matrix so far, with the file keys given; `from` continues a checkpoint's sums.
    Imatrix imatrix(const std::vector<std::string> & datasets, uint32_t chunk_size, uint64_t tokens) const;
    void    resume_from(const Imatrix & from);
    bool    empty() const { return m_.entries.empty(); }

private:
    Imatrix              m_;
    std::vector<uint8_t> src1_, ids_;  // host copies of device tensors
};

}  // namespace reap
