#include "gguf/gguf_file.h"

#include "core/error.h"
#include "core/log.h"

#include "ggml.h"
#include "llama.h"

#include <sys/stat.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

namespace reap {

gguf_context * gguf_open_checked(const std::string & path, bool no_alloc, ggml_context ** data_ctx) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        fail("%s: %s", path.c_str(), std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        fail("%s: is a directory, not a GGUF file", path.c_str());
    }
    LogCapture       capture;
    gguf_init_params params{no_alloc, data_ctx};
    gguf_context *   ctx = gguf_init_from_file(path.c_str(), params);
    if (ctx == nullptr) {
        std::string why = capture.last_line();
        fail("%s: not a valid GGUF file (%s)", path.c_str(), why.empty() ? "unreadable" : why.c_str());
    }
    return ctx;
}

int tensor_layer(const std::string & name, std::string * rest) {
    if (name.compare(0, 4, "blk.") != 0) {
        return -1;
    }
    size_t i  = 4;
    long   il = 0;
    if (i >= name.size() || !std::isdigit((unsigned char) name[i])) {
        return -1;
    }
    while (i < name.size() && std::isdigit((unsigned char) name[i])) {
        il = il * 10 + (name[i] - '0');
        if (il > 1000000) {
            return -1;
        }
        i++;
    }
    if (i >= name.size() || name[i] != '.') {
        return -1;
    }
    if (rest != nullptr) {
        *rest = name.substr(i + 1);
    }
    return int(il);
}

GgufFile::GgufFile(GgufFile && o) noexcept { *this = std::move(o); }

GgufFile & GgufFile::operator=(GgufFile && o) noexcept {
    if (this != &o) {
        close();
        path_        = std::move(o.path_);
        split_paths_ = std::move(o.split_paths_);
        ctxs_        = std::move(o.ctxs_);
        files_       = std::move(o.files_);
        tensors_     = std::move(o.tensors_);
        file_size_   = o.file_size_;
        o.ctxs_.clear();
        o.files_.clear();
    }
    return *this;
}

GgufFile::~GgufFile() { close(); }

void GgufFile::close() {
    for (FILE * f : files_) {
        if (f) {
            std::fclose(f);
        }
    }
    files_.clear();
    for (gguf_context * c : ctxs_) {
        gguf_free(c);
    }
    ctxs_.clear();
}

static uint64_t file_size_of(const std::string & path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        fail("%s: %s", path.c_str(), std::strerror(errno));
    }
    return uint64_t(st.st_size);
}

// Keys are looked up by their C string: an empty key (or one starting with a NUL byte) makes
// gguf_set_kv abort when it is copied, and "general.name\0" would stand in for general.name.
static void check_keys(const gguf_context * c, const std::string & path) {
    std::set<std::string> seen;
    for (int64_t k = 0; k < gguf_get_n_kv(c); k++) {
        const std::string key = gguf_get_key(c, k);
        if (key.empty()) {
            fail("%s: key-value pair %lld has an empty key (or one starting with a NUL byte)", path.c_str(),
                 (long long) k);
        }
        if (!seen.insert(key).second) {
            fail("%s: key '%s' appears twice (a key with a NUL byte inside it?)", path.c_str(), key.c_str());
        }
    }
}

// The value of split key `key` in one part, which must be stored with the integer type
// llama.cpp's loader reads it with (it aborts on another type).
static uint64_t split_key(const gguf_context * c, const char * key, gguf_type type, const std::string & path) {
    const int64_t k = gguf_find_key(c, key);
    if (k < 0) {
        fail("%s: part of a split model without the key %s", path.c_str(), key);
    }
    if (gguf_get_kv_type(c, k) != type) {
        fail("%s: key %s has type %s, expected %s", path.c_str(), key, gguf_type_name(gguf_get_kv_type(c, k)),
             gguf_type_name(type));
    }
    return type == GGUF_TYPE_UINT16 ? gguf_get_val_u16(c, k) : uint64_t(std::max(0, gguf_get_val_i32(c, k)));
}

// The split-set id a part carries (k_split_set_id_key), or "" (gguf-split, an older reap).
static std::string split_set_id(const gguf_context * c) {
    const int64_t k = gguf_find_key(c, k_split_set_id_key);
    return k >= 0 && gguf_get_kv_type(c, k) == GGUF_TYPE_STRING ? gguf_get_val_str(c, k) : "";
}

// Every part of a split set must say which part it is, of how many, and how many tensors the
// whole set holds, as llama.cpp's loader checks them, and come from one write: parts of two
// (a crash or kill -9 between the renames) would load as a model that is neither.
void GgufFile::check_split_keys() const {
    const size_t      count = ctxs_.size();
    const std::string id0   = split_set_id(ctxs_[0]);
    for (size_t s = 0; s < count; s++) {
        const gguf_context * c  = ctxs_[s];
        const std::string &  sp = split_paths_[s];
        const uint64_t       no = split_key(c, "split.no", GGUF_TYPE_UINT16, sp);
        const uint64_t       n  = split_key(c, "split.count", GGUF_TYPE_UINT16, sp);
        const uint64_t       nt = split_key(c, "split.tensors.count", GGUF_TYPE_INT32, sp);
        if (no != s || n != count) {
            fail("%s: says it is part %llu of %llu, but it is part %zu of %zu", sp.c_str(), (unsigned long long) no + 1,
                 (unsigned long long) n, s + 1, count);
        }
        if (nt != tensors_.size()) {
            fail("%s: split.tensors.count is %llu but the %zu parts hold %zu tensors", sp.c_str(),
                 (unsigned long long) nt, count, tensors_.size());
        }
        if (const std::string id = split_set_id(c); id != id0) {
            fail(
                "%s: part %zu of %zu comes from another write than part 1 (%s %s vs %s): an interrupted or "
                "concurrent write mixed two sets; write it again",
                sp.c_str(), s + 1, count, k_split_set_id_key, id.empty() ? "none" : id.c_str(),
                id0.empty() ? "none" : id0.c_str());
        }
    }
}

// A name like "m-00002-of-00003.gguf" stands for the whole set: opens every part, in order.
void GgufFile::open_split_set() {
    const auto count = get_uint("split.count").value_or(1);
    const auto no    = get_uint("split.no").value_or(0);
    if (count == 0 || count > 9999 || no >= count) {
        fail("%s: bad split metadata (split.no=%llu, split.count=%llu)", path_.c_str(), (unsigned long long) no,
             (unsigned long long) count);
    }
    if (count == 1) {
        return;
    }
    char prefix[4096];
    if (llama_split_prefix(prefix, sizeof(prefix), path_.c_str(), int(no), int(count)) <= 0) {
        fail("%s: split file name does not match split.no=%llu of %llu (expected *-%05d-of-%05d.gguf)", path_.c_str(),
             (unsigned long long) no + 1, (unsigned long long) count, int(no) + 1, int(count));
    }
    gguf_context * given = ctxs_[0];
    ctxs_.clear();
    split_paths_.clear();
    for (int i = 0; i < int(count); i++) {
        char sp[4096];
        llama_split_path(sp, sizeof(sp), prefix, i, int(count));
        if (i == int(no)) {
            ctxs_.push_back(given);
        } else {
            ctxs_.push_back(gguf_open_checked(sp, true, nullptr));
            check_keys(ctxs_.back(), sp);
        }
        split_paths_.push_back(sp);
    }
    path_ = split_paths_[0];
}

// The tensors of part `s`, each checked to lie inside its file and to appear only once.
void GgufFile::add_tensors(size_t s) {
    const std::string &  sp    = split_paths_[s];
    const uint64_t       size  = file_size_of(sp);
    const gguf_context * c     = ctxs_[s];
    const uint64_t       data0 = gguf_get_data_offset(c);
    file_size_ += size;
    for (int64_t i = 0; i < gguf_get_n_tensors(c); i++) {
        TensorInfo t;
        t.name             = gguf_get_tensor_name(c, i);
        t.type             = gguf_get_tensor_type(c, i);
        const int64_t * ne = gguf_get_tensor_ne(c, i);
        t.n_dims           = 1;
        for (int d = 0; d < 4; d++) {
            t.ne[d] = ne[d];
            if (ne[d] != 1) {
                t.n_dims = d + 1;
            }
        }
        t.nbytes      = gguf_get_tensor_size(c, i);
        t.split       = int(s);
        t.file_offset = data0 + gguf_get_tensor_offset(c, i);
        t.id          = i;
        if (t.file_offset > size || t.nbytes > size - t.file_offset) {
            fail("%s: truncated: tensor '%s' needs bytes up to %llu but the file has %llu", sp.c_str(), t.name.c_str(),
                 (unsigned long long) (t.file_offset + t.nbytes), (unsigned long long) size);
        }
        if (find_tensor(t.name) != nullptr) {
            fail("%s: tensor '%s' appears in more than one split", sp.c_str(), t.name.c_str());
        }
        tensors_.push_back(std::move(t));
    }
}

GgufFile GgufFile::open(const std::string & path) {
    GgufFile f;
    f.path_ = path;
    f.ctxs_.push_back(gguf_open_checked(path, true, nullptr));
    f.split_paths_.push_back(path);
    check_keys(f.ctxs_[0], path);
    if (f.has_key("split.count")) {
        f.open_split_set();
    }
    for (size_t s = 0; s < f.ctxs_.size(); s++) {
        f.add_tensors(s);
    }
    if (f.ctxs_.size() > 1) {
        f.check_split_keys();
    }
    f.files_.assign(f.ctxs_.size(), nullptr);
    return f;
}

const TensorInfo * GgufFile::find_tensor(const std::string & name) const {
    for (const auto & t : tensors_) {
        if (t.name == name) {
            return &t;
        }
    }
    return nullptr;
}

bool GgufFile::has_key(const std::string & key) const { return gguf_find_key(meta(), key.c_str()) >= 0; }

std::string GgufFile::get_str(const std::string & key, const std::string & def) const {
    const int64_t k = gguf_find_key(meta(), key.c_str());
    if (k < 0 || gguf_get_kv_type(meta(), k) != GGUF_TYPE_STRING) {
        return def;
    }
    return gguf_get_val_str(meta(), k);
}

static std::optional<uint64_t> scalar_uint(const gguf_context * c, int64_t k, const std::string & key,
                                           const std::string & path) {
    auto check = [&](int64_t v) -> uint64_t {
        if (v < 0) {
            fail("%s: key '%s' is negative (%lld)", path.c_str(), key.c_str(), (long long) v);
        }
        return uint64_t(v);
    };
    switch (gguf_get_kv_type(c, k)) {
        case GGUF_TYPE_UINT8: return gguf_get_val_u8(c, k);
        case GGUF_TYPE_UINT16: return gguf_get_val_u16(c, k);
        case GGUF_TYPE_UINT32: return gguf_get_val_u32(c, k);
        case GGUF_TYPE_UINT64: return gguf_get_val_u64(c, k);
        case GGUF_TYPE_INT8: return check(gguf_get_val_i8(c, k));
        case GGUF_TYPE_INT16: return check(gguf_get_val_i16(c, k));
        case GGUF_TYPE_INT32: return check(gguf_get_val_i32(c, k));
        case GGUF_TYPE_INT64: return check(gguf_get_val_i64(c, k));
        default: return std::nullopt;
    }
}

std::optional<uint64_t> GgufFile::get_uint(const std::string & key) const {
    const int64_t k = gguf_find_key(meta(), key.c_str());
    if (k < 0) {
        return std::nullopt;
    }
    auto v = scalar_uint(meta(), k, key, path_);
    if (!v) {
        fail("%s: key '%s' is not an integer", path_.c_str(), key.c_str());
    }
    return v;
}

std::optional<double> GgufFile::get_float(const std::string & key) const {
    const int64_t k = gguf_find_key(meta(), key.c_str());
    if (k < 0) {
        return std::nullopt;
    }
    switch (gguf_get_kv_type(meta(), k)) {
        case GGUF_TYPE_FLOAT32: return gguf_get_val_f32(meta(), k);
        case GGUF_TYPE_FLOAT64: return gguf_get_val_f64(meta(), k);
        default: return std::nullopt;
    }
}

bool GgufFile::is_array(const std::string & key) const {
    const int64_t k = gguf_find_key(meta(), key.c_str());
    return k >= 0 && gguf_get_kv_type(meta(), k) == GGUF_TYPE_ARRAY;
}

std::vector<uint64_t> GgufFile::get_uint_per_layer(const std::string & key, size_t n_layer) const {
    const int64_t k = gguf_find_key(meta(), key.c_str());
    if (k < 0) {
        return {};
    }
    if (gguf_get_kv_type(meta(), k) != GGUF_TYPE_ARRAY) {
        auto v = get_uint(key);
        return std::vector<uint64_t>(n_layer, *v);
    }
    auto out = get_uint_array(key);
    if (out.size() != n_layer) {
        fail("%s: key '%s' has %zu entries but the model has %zu layers", path_.c_str(), key.c_str(), out.size(),
             n_layer);
    }
    return out;
}

std::vector<uint64_t> GgufFile::get_uint_array(const std::string & key) const {
    const int64_t k = gguf_find_key(meta(), key.c_str());
    if (k < 0) {
        return {};
    }
    if (gguf_get_kv_type(meta(), k) != GGUF_TYPE_ARRAY) {
        fail("%s: key '%s' is not an array", path_.c_str(), key.c_str());
    }
    // The element type first: gguf_get_arr_data aborts on an array of strings.
    const gguf_type type = gguf_get_arr_type(meta(), k);
    if (type != GGUF_TYPE_UINT8 && type != GGUF_TYPE_UINT16 && type != GGUF_TYPE_UINT32 && type != GGUF_TYPE_UINT64 &&
        type != GGUF_TYPE_INT32) {
        fail("%s: key '%s' is an array of %s, expected u8, u16, u32, u64 or i32", path_.c_str(), key.c_str(),
             gguf_type_name(type));
    }
    const size_t          n    = gguf_get_arr_n(meta(), k);
    const void *          data = gguf_get_arr_data(meta(), k);
    std::vector<uint64_t> out(n);
    for (size_t i = 0; i < n; i++) {
        switch (type) {
            case GGUF_TYPE_UINT8: out[i] = ((const uint8_t *) data)[i]; break;
            case GGUF_TYPE_UINT16: out[i] = ((const uint16_t *) data)[i]; break;
            case GGUF_TYPE_UINT32: out[i] = ((const uint32_t *) data)[i]; break;
            case GGUF_TYPE_UINT64: out[i] = ((const uint64_t *) data)[i]; break;
            default: {
                const int32_t v = ((const int32_t *) data)[i];
                if (v < 0) {
                    fail("%s: key '%s' has a negative entry", path_.c_str(), key.c_str());
                }
                out[i] = uint64_t(v);
            }
        }
    }
    return out;
}

}  // namespace reap
