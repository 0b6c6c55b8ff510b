// Safetensors, the tensor container of Hugging Face checkpoints: an 8-byte little-endian header
// length N, N bytes of JSON header ({"name": {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {string: string}}), then the raw data. Read with every offset and size checked
// against the file up front (a hostile or truncated file is refused at open, never mid-copy);
// written from a declared tensor list, data appended in that order. Bytes are never converted.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace reap {

// Bits per element of a safetensors dtype ("BF16" -> 16, "F4" -> 4); 0 for a name it does not know.
uint32_t safetensors_dtype_bits(const std::string & dtype);

struct StTensor {
    std::string           name;
    std::string           dtype;
    std::vector<uint64_t> shape;       // outermost first (PyTorch order)
    uint64_t              offset = 0;  // absolute byte offset of the data in the file
    uint64_t              nbytes = 0;
};

class SafetensorsFile {
public:
    // Opens and validates `path`; throws reap::Error "<path>: what is wrong".
    static SafetensorsFile open(const std::string & path);

    SafetensorsFile(SafetensorsFile &&) noexcept;
    SafetensorsFile & operator=(SafetensorsFile &&) noexcept;
    ~SafetensorsFile();

    const std::string &                        path() const { return path_; }
    uint64_t                                   file_size() const { return size_; }
    uint64_t                                   data_start() const { return data_start_; }
    const std::vector<StTensor> &              tensors() const { return tensors_; }  // in data order
    const std::map<std::string, std::string> & metadata() const { return metadata_; }
    const StTensor *                           find(const std::string & name) const;
    int                                        fd() const { return fd_; }

    // Reads `n` bytes of `t` from byte `off` within the tensor.
    void read(const StTensor & t, uint64_t off, void * dst, uint64_t n) const;

private:
    SafetensorsFile() = default;
    void parse_header(const std::string & header);

    std::string                        path_;
    int                                fd_         = -1;
    uint64_t                           size_       = 0;
    uint64_t                           data_start_ = 0;
    std::vector<StTensor>              tensors_;
    std::map<std::string, std::string> metadata_;
};

// A tensor of a file to be written: its data comes later, in declaration order.
struct StOutTensor {
    std::string           name;
    std::string           dtype;
    std::vector<uint64_t> shape;
    uint64_t              nbytes = 0;
};

// The block size within which an output's data should sit where it sat in the input for the
// kernel's copy to run at full speed: copy_file_range on ext4 measured 1.2-1.5x slower when the
// two offsets differ modulo 64 KiB (page-cache folios up to that size), even when they agree
// modulo 4 KiB (bench/RESULTS.md).
inline constexpr uint32_t k_copy_alignment = 64u << 10;

// The header block (length + JSON padded with spaces to 8 bytes) for these tensors, laid out
// back to back in the given order. With `data_offset` (a multiple of 8 below k_copy_alignment)
// the JSON is padded further ("the header may be padded with whitespace"), so that the data
// starts at that offset within a k_copy_alignment block.
std::string safetensors_header(const std::vector<StOutTensor> &           tensors,
                               const std::map<std::string, std::string> & metadata,
                               std::optional<uint32_t>                    data_offset = std::nullopt);

// Writes one safetensors file at `path` (a plain file: callers write into a temporary folder or
// rename it themselves). The header goes out at once; the data is appended by write()/copy_from()
// and finish() checks that every declared byte came.
class SafetensorsWriter {
public:
    SafetensorsWriter(const std::string & path, const std::vector<StOutTensor> & tensors,
                      const std::map<std::string, std::string> & metadata,
                      std::optional<uint32_t>                    data_offset = std::nullopt);
    ~SafetensorsWriter();
    SafetensorsWriter(const SafetensorsWriter &)             = delete;
    SafetensorsWriter & operator=(const SafetensorsWriter &) = delete;

    void write(const void * data, uint64_t n);
    // Copies `n` bytes at `off` of the file `in_fd` (in the kernel where it can: copy_file_range).
    void     copy_from(int in_fd, uint64_t off, uint64_t n, const std::string & in_path);
    void     finish();  // flushes to disk and closes; throws when bytes are missing
    uint64_t size() const { return end_; }

private:
    std::string path_;
    int         fd_  = -1;
    uint64_t    pos_ = 0;
    uint64_t    end_ = 0;
};

}  // namespace reap
