#include "hf/safetensors.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace reap {

namespace {

// Headers of real checkpoints are well under a megabyte; the safetensors library refuses
// headers over 100 MB, and so does this reader (before allocating them).
constexpr uint64_t k_max_header = 100ull << 20;

uint64_t le64(const uint8_t * p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void pread_all(int fd, void * dst, uint64_t n, uint64_t off, const std::string & path) {
    auto * p = static_cast<uint8_t *>(dst);
    while (n > 0) {
        const ssize_t r = ::pread(fd, p, size_t(std::min<uint64_t>(n, 1u << 30)), off_t(off));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail("%s: read failed: %s", path.c_str(), r == 0 ? "unexpected end of file" : std::strerror(errno));
        p += r;
        off += uint64_t(r);
        n -= uint64_t(r);
    }
}

void pwrite_all(int fd, const void * src, uint64_t n, uint64_t off, const std::string & path) {
    const auto * p = static_cast<const uint8_t *>(src);
    while (n > 0) {
        const ssize_t w = ::pwrite(fd, p, size_t(std::min<uint64_t>(n, 1u << 30)), off_t(off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail("%s: write failed: %s", path.c_str(), std::strerror(errno));
        p += w;
        off += uint64_t(w);
        n -= uint64_t(w);
    }
}

uint64_t json_uint(const nlohmann::json & v, const std::string & path, const std::string & name, const char * what) {
    if (!v.is_number_unsigned()) {
        fail("%s: tensor '%s' has a %s that is not a non-negative integer", path.c_str(), name.c_str(), what);
    }
    return v.get<uint64_t>();
}

// The tensor `name` of the header, its sizes checked against dtype, shape and the data section.
StTensor parse_tensor(const std::string & name, const nlohmann::json & v, const std::string & path,
                      uint64_t data_size) {
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2) {
        fail("%s: tensor '%s' needs a dtype, a shape and two data_offsets", path.c_str(), name.c_str());
    }
    StTensor t;
    t.name              = name;
    t.dtype             = v["dtype"].get<std::string>();
    const uint32_t bits = safetensors_dtype_bits(t.dtype);
    if (bits == 0)
        fail("%s: tensor '%s' has dtype '%s', which is not a safetensors dtype", path.c_str(), name.c_str(),
             t.dtype.c_str());
    unsigned __int128 elems = 1;
    for (const auto & d : v["shape"]) {
        t.shape.push_back(json_uint(d, path, name, "dimension"));
        elems *= t.shape.back();
        if (elems > (unsigned __int128) 1 << 62)
            fail("%s: tensor '%s' has an impossible shape", path.c_str(), name.c_str());
    }
    const unsigned __int128 bits_total = elems * bits;
    const uint64_t          begin      = json_uint(v["data_offsets"][0], path, name, "data offset");
    const uint64_t          end        = json_uint(v["data_offsets"][1], path, name, "data offset");
    if (end < begin || end > data_size) {
        fail("%s: tensor '%s' has data_offsets [%llu, %llu] outside the %llu bytes of data", path.c_str(), name.c_str(),
             (unsigned long long) begin, (unsigned long long) end, (unsigned long long) data_size);
    }
    if (bits_total % 8 != 0 || bits_total / 8 != end - begin) {
        fail("%s: tensor '%s' holds %llu bytes, but dtype %s with its shape needs %.0f", path.c_str(), name.c_str(),
             (unsigned long long) (end - begin), t.dtype.c_str(), double(bits_total) / 8.0);
    }
    t.offset = begin;  // made absolute by the caller
    t.nbytes = end - begin;
    return t;
}

}  // namespace

uint32_t safetensors_dtype_bits(const std::string & d) {
    static const std::map<std::string, uint32_t> bits = {
        {"BOOL", 8}, {"U8", 8},   {"I8", 8},    {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},
        {"U16", 16}, {"F16", 16}, {"BF16", 16}, {"I32", 32},    {"U32", 32},    {"F32", 32},    {"F64", 64},
        {"I64", 64}, {"U64", 64}, {"F4", 4},    {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"C64", 64},
    };
    const auto it = bits.find(d);
    return it == bits.end() ? 0 : it->second;
}

SafetensorsFile SafetensorsFile::open(const std::string & path) {
    SafetensorsFile f;
    f.path_ = path;
    f.fd_   = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd_ < 0) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    struct stat st;
    if (::fstat(f.fd_, &st) != 0 || !S_ISREG(st.st_mode)) fail("%s: not a regular file", path.c_str());
    f.size_ = uint64_t(st.st_size);
    if (f.size_ < 8) {
        fail("%s: truncated safetensors header (%llu bytes; the file starts with an 8-byte header length)",
             path.c_str(), (unsigned long long) f.size_);
    }
    uint8_t len_bytes[8];
    pread_all(f.fd_, len_bytes, 8, 0, path);
    const uint64_t n = le64(len_bytes);
    if (n > f.size_ - 8) {
        fail("%s: safetensors header length %llu is larger than the file (%llu bytes)", path.c_str(),
             (unsigned long long) n, (unsigned long long) f.size_);
    }
    if (n > k_max_header)
        fail("%s: safetensors header of %llu bytes (at most 100 MB)", path.c_str(), (unsigned long long) n);
    std::string header(size_t(n), '\0');
    pread_all(f.fd_, header.data(), n, 8, path);
    f.data_start_ = 8 + n;
    f.parse_header(header);
    return f;
}

void SafetensorsFile::parse_header(const std::string & header) {
    const nlohmann::json h = parse_json_text(header, path_, "safetensors header");
    if (!h.is_object()) fail("%s: the safetensors header is not a JSON object", path_.c_str());
    const uint64_t data_size = size_ - data_start_;
    for (const auto & [name, v] : h.items()) {
        if (name == "__metadata__") {
            if (!v.is_object()) fail("%s: __metadata__ is not an object", path_.c_str());
            for (const auto & [k, s] : v.items()) {
                if (!s.is_string()) fail("%s: __metadata__ value '%s' is not a string", path_.c_str(), k.c_str());
                metadata_[k] = s.get<std::string>();
            }
            continue;
        }
        tensors_.push_back(parse_tensor(name, v, path_, data_size));
    }
    std::sort(tensors_.begin(), tensors_.end(), [](const StTensor & a, const StTensor & b) {
        return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
    });
    for (size_t i = 1; i < tensors_.size(); i++) {
        const StTensor & a = tensors_[i - 1];
        const StTensor & b = tensors_[i];
        if (a.offset + a.nbytes > b.offset) {
            fail("%s: tensors '%s' and '%s' overlap in the data section", path_.c_str(), a.name.c_str(),
                 b.name.c_str());
        }
    }
    for (auto & t : tensors_)
        t.offset += data_start_;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile && o) noexcept { *this = std::move(o); }

SafetensorsFile & SafetensorsFile::operator=(SafetensorsFile && o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_       = std::move(o.path_);
        fd_         = o.fd_;
        size_       = o.size_;
        data_start_ = o.data_start_;
        tensors_    = std::move(o.tensors_);
        metadata_   = std::move(o.metadata_);
        o.fd_       = -1;
    }
    return *this;
}

SafetensorsFile::~SafetensorsFile() {
    if (fd_ >= 0) ::close(fd_);
}

const StTensor * SafetensorsFile::find(const std::string & name) const {
    for (const auto & t : tensors_) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

void SafetensorsFile::read(const StTensor & t, uint64_t off, void * dst, uint64_t n) const {
    if (off > t.nbytes || n > t.nbytes - off) {
        fail("%s: read of %llu bytes at %llu past the end of tensor '%s'", path_.c_str(), (unsigned long long) n,
             (unsigned long long) off, t.name.c_str());
    }
    pread_all(fd_, dst, n, t.offset + off, path_);
}

std::string safetensors_header(const std::vector<StOutTensor> &           tensors,
                               const std::map<std::string, std::string> & metadata,
                               std::optional<uint32_t>                    data_offset) {
    // ordered_json keeps the tensors in data order, as the safetensors library writes them.
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    uint64_t off = 0;
    for (const auto & t : tensors) {
        h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes}}};
        off += t.nbytes;
    }
    std::string json = h.dump();
    json.append((8 - json.size() % 8) % 8, ' ');
    if (data_offset) {
        const uint64_t a = k_copy_alignment, start = 8 + json.size();
        json.append(size_t((a + *data_offset % a - start % a) % a), ' ');
    }
    std::string out(8, '\0');
    for (int i = 0; i < 8; i++)
        out[size_t(i)] = char((uint64_t(json.size()) >> (8 * i)) & 0xff);
    return out + json;
}

SafetensorsWriter::SafetensorsWriter(const std::string & path, const std::vector<StOutTensor> & tensors,
                                     const std::map<std::string, std::string> & metadata,
                                     std::optional<uint32_t>                    data_offset)
    : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("%s: cannot create output: %s", path.c_str(), std::strerror(errno));
    const std::string header = safetensors_header(tensors, metadata, data_offset);
    end_                     = header.size();
    for (const auto & t : tensors)
        end_ += t.nbytes;
    write(header.data(), header.size());
}

SafetensorsWriter::~SafetensorsWriter() {
    if (fd_ >= 0) ::close(fd_);
}

void SafetensorsWriter::write(const void * data, uint64_t n) {
    if (n > end_ - pos_) fail("%s: more data than the header declares", path_.c_str());
    pwrite_all(fd_, data, n, pos_, path_);
    pos_ += n;
}

void SafetensorsWriter::copy_from(int in_fd, uint64_t off, uint64_t n, const std::string & in_path) {
    if (n > end_ - pos_) fail("%s: more data than the header declares", path_.c_str());
    while (n > 0) {
        loff_t        in_off = loff_t(off), out_off = loff_t(pos_);
        const ssize_t c = ::copy_file_range(in_fd, &in_off, fd_, &out_off, size_t(std::min<uint64_t>(n, 1u << 30)), 0);
        if (c < 0 && errno == EINTR) continue;
        if (c <= 0) {
            if (c < 0 && errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
                fail("%s: copy from %s failed: %s", path_.c_str(), in_path.c_str(), std::strerror(errno));
            }
            // No kernel copy between these files (or a short source): through a buffer.
            std::vector<uint8_t> buf(size_t(std::min<uint64_t>(n, 8u << 20)));
            while (n > 0) {
                const uint64_t k = std::min<uint64_t>(n, buf.size());
                pread_all(in_fd, buf.data(), k, off, in_path);
                write(buf.data(), k);
                off += k;
                n -= k;
            }
            return;
        }
        off += uint64_t(c);
        pos_ += uint64_t(c);
        n -= uint64_t(c);
    }
}

void SafetensorsWriter::finish() {
    if (pos_ != end_) {
        fail("%s: %llu of %llu bytes written", path_.c_str(), (unsigned long long) pos_, (unsigned long long) end_);
    }
    const bool ok = ::fdatasync(fd_) == 0;
    const int  e  = errno;
    ::close(fd_);
    fd_ = -1;
    if (!ok) fail("%s: write failed: %s", path_.c_str(), std::strerror(e));
}

}  // namespace reap
