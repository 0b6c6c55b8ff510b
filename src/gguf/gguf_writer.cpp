#include "gguf/gguf_writer.h"

#include "core/error.h"
#include "core/text.h"
#include "gguf/gguf_file.h"

#include "llama.h"

#include <algorithm>
#include <random>
#include <vector>

namespace reap {

GgmlContextPtr tensor_meta_context(size_t n_tensors) {
    ggml_init_params ip{ggml_tensor_overhead() * (n_tensors + 1), nullptr, true};
    return GgmlContextPtr(ggml_init(ip));
}

GgufFileWriter::GgufFileWriter(const std::string & path, const gguf_context * ctx)
    : file_(path), ctx_(ctx), path_(path), align_(gguf_get_alignment(ctx)) {
    std::vector<uint8_t> meta(gguf_get_meta_size(ctx));
    gguf_get_meta_data(ctx, meta.data());
    file_.write(meta.data(), meta.size());
    meta_size_ = meta.size();
}

void GgufFileWriter::write(const void * data, size_t n) {
    file_.write(data, n);
    tensor_bytes_ += n;
}

size_t GgufFileWriter::end_tensor() {
    if (tensor_ >= gguf_get_n_tensors(ctx_)) {
        fail("%s: more tensors written than the metadata describes", path_.c_str());
    }
    const uint64_t want = gguf_get_tensor_size(ctx_, tensor_);
    if (tensor_bytes_ != want) {
        // A file with this tensor would not re-open (its data would overlap the next one).
        fail("%s: tensor '%s' has %llu bytes of data but its type and shape need %llu", path_.c_str(),
             gguf_get_tensor_name(ctx_, tensor_), (unsigned long long) tensor_bytes_, (unsigned long long) want);
    }
    static const uint8_t zeros[64] = {};
    const size_t         pad       = (align_ - tensor_bytes_ % align_) % align_;
    for (size_t left = pad; left > 0;) {  // any alignment gguf accepts, not only up to 64
        const size_t n = std::min(left, sizeof(zeros));
        file_.write(zeros, n);
        left -= n;
    }
    tensor_++;
    tensor_bytes_ = 0;
    return pad;
}

void GgufFileWriter::finish() {
    if (tensor_ != gguf_get_n_tensors(ctx_) || tensor_bytes_ != 0) {
        fail("%s: %lld of %lld tensors written", path_.c_str(), (long long) tensor_,
             (long long) gguf_get_n_tensors(ctx_));
    }
    file_.sync();
}

void GgufFileWriter::commit() {
    finish();
    file_.commit();
}

void commit_together(const std::vector<GgufFileWriter *> & files) {
    for (auto * f : files)
        f->finish();
    for (auto * f : files)
        f->commit();
}

std::string new_split_set_id() {
    std::random_device rd;
    std::string        id;
    for (int i = 0; i < 4; i++)
        id += strfmt("%08x", unsigned(rd()));
    return id;
}

GgufSplitLayout split_like_gguf_split(const gguf_context * whole, ggml_context * tensors, uint64_t split_max) {
    GgufSplitLayout out;
    const size_t    align     = gguf_get_alignment(whole);
    const int64_t   n_tensors = gguf_get_n_tensors(whole);
    uint64_t        part      = 0;
    out.file_of.assign(size_t(n_tensors), 0);
    for (int64_t i = 0; i < n_tensors && split_max > 0; i++) {
        const uint64_t sz = GGML_PAD(gguf_get_tensor_size(whole, i), align);
        if (part > 0 && part + sz > split_max) {
            out.file_of[size_t(i)] = out.file_of[size_t(i - 1)] + 1;
            part                   = 0;
        } else if (i > 0) {
            out.file_of[size_t(i)] = out.file_of[size_t(i - 1)];
        }
        part += sz;
    }
    const size_t n_files = n_tensors > 0 ? out.file_of.back() + 1 : 1;
    if (n_files == 1) {
        return out;
    }
    const std::string set_id = new_split_set_id();
    for (size_t f = 0; f < n_files; f++) {
        out.files.emplace_back(gguf_init_empty());
        gguf_context * sc = out.files.back().get();
        if (f == 0) gguf_set_kv(sc, whole);
        gguf_set_val_str(sc, k_split_set_id_key, set_id.c_str());
        gguf_set_val_u16(sc, "split.no", uint16_t(f));
        gguf_set_val_u16(sc, "split.count", uint16_t(n_files));
        gguf_set_val_i32(sc, "split.tensors.count", int32_t(n_tensors));
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        gguf_add_tensor(out.files[out.file_of[size_t(i)]].get(),
                        ggml_get_tensor(tensors, gguf_get_tensor_name(whole, i)));
    }
    return out;
}

std::vector<std::string> split_file_names(const std::string & output, size_t n_files) {
    if (n_files == 1) return {output};
    const bool               ext    = output.size() > 5 && ends_with(output, ".gguf");
    const std::string        prefix = ext ? output.substr(0, output.size() - 5) : output;
    std::vector<std::string> names;
    for (size_t f = 0; f < n_files; f++) {
        char p[4096];
        llama_split_path(p, sizeof(p), prefix.c_str(), int(f), int(n_files));
        names.push_back(p);
    }
    return names;
}

uint64_t gguf_output_size(const gguf_context * whole, const GgufSplitLayout & split) {
    uint64_t size = 0;
    if (split.files.empty()) {
        size += gguf_get_meta_size(whole);
    }
    for (const auto & f : split.files) {
        size += gguf_get_meta_size(f.get());
    }
    const size_t align = gguf_get_alignment(whole);
    for (int64_t i = 0; i < gguf_get_n_tensors(whole); i++) {
        size += GGML_PAD(gguf_get_tensor_size(whole, i), align);
    }
    return size;
}

}  // namespace reap
