// llama.cpp's importance matrix in llama-imatrix's GGUF format (tools/imatrix/imatrix.cpp):
// `general.type = imatrix`, `imatrix.datasets` (strings), `imatrix.chunk_count`,
// `imatrix.chunk_size` (u32), and per weight `W` that llama-imatrix collects two F32 tensors:
// `W.in_sum2` [n_cols, n_mat], the sum over the tokens W multiplied of the square of each input
// column, per matrix (one for a dense weight, one per expert for an expert tensor), and
// `W.counts` [1, n_mat], those tokens per matrix. llama-quantize divides one by the other.
//
// The one reader and writer of these files: `reap profile --imatrix` writes them, `reap merge`
// adds them, `reap prune --imatrix` slices them to the kept experts, the sweep quantizes with
// them. Files are read strictly (they may come from anywhere): every pair complete, F32, the
// shapes consistent, the values finite and not negative.
#pragma once

#include "gguf/gguf_writer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace reap {

struct ImatrixEntry {
    int64_t             n_cols = 0;  // the weight's input width (ne[0]); a 3-D dense weight's matrices side by side
    std::vector<double> in_sum2;     // n_mat rows of n_cols: Σ x² per column
    std::vector<double> counts;      // n_mat: tokens per matrix

    size_t n_mat() const { return counts.size(); }
};

struct Imatrix {
    std::vector<std::string>            datasets;  // the calibration files, in order
    uint32_t                            chunk_count = 0;
    uint32_t                            chunk_size  = 0;  // tokens per chunk (llama-imatrix's -c)
    std::map<std::string, ImatrixEntry> entries;          // by weight name, "blk.3.ffn_down_exps.weight"
};

// Reads a GGUF imatrix file; throws reap::Error naming the file and the problem (a legacy
// .dat file, a model instead of an imatrix, a broken pair, a non-finite value).
Imatrix read_imatrix(const std::string & path);

// Writes `m` as llama-imatrix does (names sorted, in_sum2 then counts; values as F32), to a
// temporary renamed into place.
void write_imatrix(const std::string & path, const Imatrix & m);

// write_imatrix's file written to its temporary, not yet renamed: `file()` goes to
// commit_together with other files (a pruned model and its importance matrix appear together, or
// neither does). Dropped uncommitted, the temporary goes.
class PendingImatrix {
public:
    PendingImatrix(const std::string & path, const Imatrix & m);
    GgufFileWriter & file() { return *file_; }

private:
    GgufContextPtr                  gguf_;
    GgmlContextPtr                  tensors_;
    std::unique_ptr<GgufFileWriter> file_;
};

// Adds `other` into `into` (sums and counts add, datasets not yet named are appended, chunk counts add): what
// llama-imatrix --in-file does with several files. Throws when an entry's shape differs or the
// chunk sizes differ; an entry in only one of them is kept as it is.
void add_imatrix(Imatrix & into, const Imatrix & other, const std::string & what);

// A hash of the values as written to a file (F32): the same imatrix, the same hash, whichever
// process wrote it. A stats file records the hash of the imatrix collected with it.
uint64_t    imatrix_hash(const Imatrix & m);
std::string imatrix_hash_text(const Imatrix & m);  // 16 hex digits

// The matrices `keep` of an entry, in that order (an expert tensor cut to the kept experts).
ImatrixEntry select_matrices(const ImatrixEntry & e, const std::vector<uint32_t> & keep);

}  // namespace reap
