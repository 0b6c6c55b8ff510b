#include "gguf/imatrix_file.h"

#include "core/error.h"
#include "core/hash.h"
#include "core/text.h"
#include "gguf/gguf_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace reap {

namespace {

// llama.cpp's key names (common/imatrix-loader.h, tools/imatrix).
constexpr const char * k_datasets    = "imatrix.datasets";
constexpr const char * k_chunk_count = "imatrix.chunk_count";
constexpr const char * k_chunk_size  = "imatrix.chunk_size";
constexpr const char * k_in_sum2     = ".in_sum2";
constexpr const char * k_counts      = ".counts";

bool remove_suffix(std::string & s, const char * suffix) {
    if (!ends_with(s, suffix)) return false;
    s.resize(s.size() - std::strlen(suffix));
    return true;
}

std::vector<float> read_f32(const GgufFile & f, const TensorInfo & t) {
    if (t.type != GGML_TYPE_F32) {
        fail("%s: tensor %s is %s; an imatrix holds F32", f.path().c_str(), t.name.c_str(), ggml_type_name(t.type));
    }
    std::vector<float> v(size_t(t.nbytes / sizeof(float)));
    f.read(t, 0, v.data(), v.size() * sizeof(float));
    for (float x : v) {
        if (!std::isfinite(x) || x < 0) {
            fail("%s: tensor %s holds %g; sums of squares and counts are finite and not negative", f.path().c_str(),
                 t.name.c_str(), double(x));
        }
    }
    return v;
}

uint32_t read_u32_key(const GgufFile & f, const char * key) {
    const std::optional<uint64_t> v = f.get_uint(key);
    if (!v) fail("%s: no %s key; not an imatrix written by llama-imatrix or reap", f.path().c_str(), key);
    if (*v > UINT32_MAX) fail("%s: %s is %llu", f.path().c_str(), key, (unsigned long long) *v);
    return uint32_t(*v);
}

}  // namespace

Imatrix read_imatrix(const std::string & path) {
    const GgufFile f = [&] {
        try {
            return GgufFile::open(path);
        } catch (const Error & e) {
            // llama-imatrix's legacy format is not GGUF.
            fail("%s (a legacy .dat imatrix? convert it: llama-imatrix --in-file FILE.dat -o FILE.gguf)", e.what());
        }
    }();
    const std::string type = f.get_str("general.type");
    if (type != "imatrix") {
        fail("%s: not an importance matrix (general.type is '%s', not 'imatrix')", path.c_str(), type.c_str());
    }
    Imatrix m;
    m.chunk_count     = read_u32_key(f, k_chunk_count);
    m.chunk_size      = read_u32_key(f, k_chunk_size);
    const int64_t key = gguf_find_key(f.meta(), k_datasets);
    if (key < 0) fail("%s: no %s key; not an imatrix written by llama-imatrix or reap", path.c_str(), k_datasets);
    if (gguf_get_kv_type(f.meta(), key) != GGUF_TYPE_ARRAY || gguf_get_arr_type(f.meta(), key) != GGUF_TYPE_STRING) {
        fail("%s: %s is not an array of strings", path.c_str(), k_datasets);
    }
    for (size_t i = 0; i < gguf_get_arr_n(f.meta(), key); i++) {
        m.datasets.emplace_back(gguf_get_arr_str(f.meta(), key, i));
    }
    std::map<std::string, std::pair<const TensorInfo *, const TensorInfo *>> pairs;
    for (const TensorInfo & t : f.tensors()) {
        std::string name = t.name;
        if (remove_suffix(name, k_in_sum2)) {
            pairs[name].first = &t;
        } else if (remove_suffix(name, k_counts)) {
            pairs[name].second = &t;
        } else {
            fail("%s: tensor %s is neither a .in_sum2 nor a .counts", path.c_str(), t.name.c_str());
        }
    }
    if (pairs.empty()) fail("%s: the importance matrix has no entries", path.c_str());
    for (const auto & [name, p] : pairs) {
        if (p.first == nullptr || p.second == nullptr) {
            fail("%s: %s has %s but no %s", path.c_str(), name.c_str(), p.first ? k_in_sum2 : k_counts,
                 p.first ? k_counts : k_in_sum2);
        }
        const TensorInfo & s = *p.first;
        const TensorInfo & c = *p.second;
        if (s.n_dims > 2 || c.n_dims > 2 || c.ne[0] != 1 || c.ne[1] != s.ne[1] || s.ne[0] < 1) {
            fail("%s: %s: in_sum2 [%lld, %lld] and counts [%lld, %lld] do not pair", path.c_str(), name.c_str(),
                 (long long) s.ne[0], (long long) s.ne[1], (long long) c.ne[0], (long long) c.ne[1]);
        }
        ImatrixEntry e;
        e.n_cols                     = s.ne[0];
        const std::vector<float> sum = read_f32(f, s), cnt = read_f32(f, c);
        e.in_sum2.assign(sum.begin(), sum.end());
        e.counts.assign(cnt.begin(), cnt.end());
        m.entries.emplace(name, std::move(e));
    }
    return m;
}

PendingImatrix::PendingImatrix(const std::string & path, const Imatrix & m) : gguf_(gguf_init_empty()) {
    gguf_context * gguf = gguf_.get();
    gguf_set_val_str(gguf, "general.type", "imatrix");
    std::vector<const char *> names;
    for (const std::string & d : m.datasets)
        names.push_back(d.c_str());
    gguf_set_arr_str(gguf, k_datasets, names.data(), names.size());
    gguf_set_val_u32(gguf, k_chunk_count, m.chunk_count);
    gguf_set_val_u32(gguf, k_chunk_size, m.chunk_size);
    tensors_ = tensor_meta_context(2 * m.entries.size());
    for (const auto & [name, e] : m.entries) {  // std::map: sorted, as llama-imatrix writes them
        ggml_tensor * s = ggml_new_tensor_2d(tensors_.get(), GGML_TYPE_F32, e.n_cols, int64_t(e.n_mat()));
        ggml_tensor * c = ggml_new_tensor_2d(tensors_.get(), GGML_TYPE_F32, 1, int64_t(e.n_mat()));
        ggml_set_name(s, (name + k_in_sum2).c_str());
        ggml_set_name(c, (name + k_counts).c_str());
        gguf_add_tensor(gguf, s);
        gguf_add_tensor(gguf, c);
    }
    file_ = std::make_unique<GgufFileWriter>(path, gguf);
    std::vector<float> buf;
    auto               put = [&](const std::vector<double> & v) {
        buf.assign(v.begin(), v.end());
        file_->write(buf.data(), buf.size() * sizeof(float));
        file_->end_tensor();
    };
    for (const auto & [name, e] : m.entries) {
        put(e.in_sum2);
        put(e.counts);
    }
}

void write_imatrix(const std::string & path, const Imatrix & m) { PendingImatrix(path, m).file().commit(); }

void add_imatrix(Imatrix & into, const Imatrix & other, const std::string & what) {
    if (into.entries.empty()) {
        into = other;
        return;
    }
    if (into.chunk_size != other.chunk_size) {
        fail("%s: chunks of %u tokens, the others' of %u", what.c_str(), other.chunk_size, into.chunk_size);
    }
    for (const auto & [name, e] : other.entries) {
        auto it = into.entries.find(name);
        if (it == into.entries.end()) {
            into.entries.emplace(name, e);
            continue;
        }
        ImatrixEntry & a = it->second;
        if (a.n_cols != e.n_cols || a.n_mat() != e.n_mat()) {
            fail("%s: %s is [%lld, %zu], the others' [%lld, %zu]", what.c_str(), name.c_str(), (long long) e.n_cols,
                 e.n_mat(), (long long) a.n_cols, a.n_mat());
        }
        for (size_t i = 0; i < a.in_sum2.size(); i++)
            a.in_sum2[i] += e.in_sum2[i];
        for (size_t i = 0; i < a.counts.size(); i++)
            a.counts[i] += e.counts[i];
    }
    for (const std::string & d : other.datasets) {  // shards of one file are one dataset
        if (std::find(into.datasets.begin(), into.datasets.end(), d) == into.datasets.end()) into.datasets.push_back(d);
    }
    into.chunk_count += other.chunk_count;
}

uint64_t imatrix_hash(const Imatrix & m) {
    Fnv1a h;
    for (const auto & [name, e] : m.entries) {
        h.str(name);
        h.u32_le(uint32_t(e.n_cols));
        for (const std::vector<double> * v : {&e.in_sum2, &e.counts}) {
            for (double x : *v) {
                const float f = float(x);
                uint32_t    bits;
                std::memcpy(&bits, &f, sizeof bits);
                h.u32_le(bits);
            }
        }
    }
    return h.h;
}

std::string imatrix_hash_text(const Imatrix & m) { return strfmt("%016llx", (unsigned long long) imatrix_hash(m)); }

ImatrixEntry select_matrices(const ImatrixEntry & e, const std::vector<uint32_t> & keep) {
    ImatrixEntry out;
    out.n_cols = e.n_cols;
    for (uint32_t k : keep) {
        if (k >= e.n_mat()) fail("matrix %u of an imatrix entry with %zu", k, e.n_mat());
        out.in_sum2.insert(out.in_sum2.end(), e.in_sum2.begin() + long(size_t(k) * size_t(e.n_cols)),
                           e.in_sum2.begin() + long(size_t(k + 1) * size_t(e.n_cols)));
        out.counts.push_back(e.counts[k]);
    }
    return out;
}

}  // namespace reap
