// Read-only view of a GGUF model (one file or a split set) through ggml's public gguf.h API.
//
// Only metadata is parsed; tensor data stays on disk and is read on demand, so opening a
// 100 GB model costs a few MB. Every tensor's data range is checked against the file size
// up front, so a truncated or hostile file is rejected at open time, never mid-copy.
#pragma once

#include "gguf.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace reap {

// The key that ties the parts of one split set together: a random id, the same in every part
// of one write and new for each write (gguf/gguf_writer.h). GgufFile::open refuses a set whose
// parts disagree, so parts of two writes (an interrupted or concurrent re-write) never load as
// one model.
inline constexpr const char * k_split_set_id_key = "reap.split.set_id";

struct TensorInfo {
    std::string name;
    ggml_type   type;
    int         n_dims;  // number of dimensions up to the last one that is not 1
    int64_t     ne[4];   // ggml order: ne[0] is the innermost (contiguous) dimension
    uint64_t    nbytes;
    int         split;        // index into GgufFile::split_paths()
    uint64_t    file_offset;  // absolute byte offset of the data in that split file
    int64_t     id;           // tensor id inside its split's gguf context
};

class GgufFile {
public:
    // Opens `path`. A name like "m-00001-of-00003.gguf" opens all three splits as one model.
    // Throws reap::Error naming the file and the problem; refuses an empty or repeated key and
    // split parts whose split.no / split.count / split.tensors.count disagree with the set.
    static GgufFile open(const std::string & path);

    GgufFile(GgufFile &&) noexcept;
    GgufFile & operator=(GgufFile &&) noexcept;
    ~GgufFile();

    const std::string &              path() const { return path_; }
    const std::vector<std::string> & split_paths() const { return split_paths_; }
    uint64_t                         file_size() const { return file_size_; }  // all splits
    // The first split's context: holds the model's key-value pairs.
    const gguf_context * meta() const { return ctxs_.front(); }
    const gguf_context * ctx(int split) const { return ctxs_.at(size_t(split)); }

    const std::vector<TensorInfo> & tensors() const { return tensors_; }
    const TensorInfo *              find_tensor(const std::string & name) const;

    // Key-value helpers. Integer getters accept any integer GGUF type.
    bool                    has_key(const std::string & key) const;
    std::string             get_str(const std::string & key, const std::string & def = "") const;
    std::optional<uint64_t> get_uint(const std::string & key) const;
    std::optional<double>   get_float(const std::string & key) const;
    // A key that is either a scalar or a per-layer array; returns one value per layer
    // (empty when absent). Errors when an array's length differs from n_layer.
    std::vector<uint64_t> get_uint_per_layer(const std::string & key, size_t n_layer) const;
    // An integer array of any length (empty when absent); an array of another type (strings,
    // floats, ...) is an error.
    std::vector<uint64_t> get_uint_array(const std::string & key) const;
    bool                  is_array(const std::string & key) const;
    std::string           arch() const { return get_str("general.architecture"); }

    // Reads `size` bytes of tensor `t` starting at byte `offset` within the tensor.
    void read(const TensorInfo & t, uint64_t offset, void * dst, uint64_t size) const;

    // Tells the kernel that bytes [offset, offset + size) of tensor `t` will be read soon, so it
    // reads them ahead in the background. A hint: a range outside the tensor or a failing call is
    // ignored. Reads that skip parts of a file (the dropped experts) defeat the kernel's own
    // sequential readahead; without this, pruning from a cold file waits on every slice.
    void prefetch(const TensorInfo & t, uint64_t offset, uint64_t size) const;
    // Tells the kernel that bytes [offset, offset + size) of tensor `t` are not needed again, so
    // their cached pages are freed at once. A hint, ignored like prefetch's. A prune reads each
    // byte once; on a 24 GB machine a 17 GB input kept in the page cache next to a 9 GB output
    // made the kernel reclaim for every new page (the prune at 0.37 of cp; measured with
    // AtomicFile's write-behind and prefetch: 1.7x cp).
    void drop_cached(const TensorInfo & t, uint64_t offset, uint64_t size) const;

private:
    GgufFile() = default;
    void close();
    void open_split_set();
    void add_tensors(size_t split);
    void check_split_keys() const;

    std::string                 path_;
    std::vector<std::string>    split_paths_;
    std::vector<gguf_context *> ctxs_;
    mutable std::vector<FILE *> files_;
    FILE *                      split_file(int split) const;  // opened on first use
    std::vector<TensorInfo>     tensors_;
    uint64_t                    file_size_ = 0;
};

// Parses the layer index out of "blk.<il>.<rest>"; returns -1 for non-layer tensors.
int tensor_layer(const std::string & name, std::string * rest = nullptr);

// Opens a gguf context from one file, turning ggml's logged complaint into the error text.
gguf_context * gguf_open_checked(const std::string & path, bool no_alloc, struct ggml_context ** data_ctx);

}  // namespace reap
