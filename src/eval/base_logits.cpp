#include "eval/base_logits.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <algorithm>
#include <cstring>

namespace reap {

namespace {

constexpr char k_magic[8] = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '1'};

}  // namespace

BaseLogitsWriter::BaseLogitsWriter(const std::string & path, uint32_t n_vocab, uint32_t n_ctx,
                                   const std::vector<std::vector<llama_token>> & windows, const std::string & base_model)
    : out_(path) {
    std::vector<llama_token> flat;
    for (const auto & w : windows) flat.insert(flat.end(), w.begin(), w.end());
    std::memcpy(hdr_.magic, k_magic, 8);
    hdr_.n_vocab        = n_vocab;
    hdr_.n_ctx          = n_ctx;
    hdr_.n_windows      = uint32_t(windows.size());
    hdr_.n_tokens       = flat.size();
    hdr_.base_file_size = file_size(base_model);
    std::strncpy(hdr_.base_name, base_name(base_model).c_str(), sizeof(hdr_.base_name) - 1);
    out_.write(&hdr_, sizeof(hdr_));
    out_.write(flat.data(), flat.size() * sizeof(llama_token));
}

void BaseLogitsWriter::write_row(const std::vector<float> & logprobs) {
    out_.write(logprobs.data(), logprobs.size() * sizeof(float));
}

BaseLogitsReader::BaseLogitsReader(const std::string & path, int n_ctx) : path_(path), in_(path, std::ios::binary) {
    if (!in_.read(reinterpret_cast<char *>(&hdr_), sizeof(hdr_)) || std::memcmp(hdr_.magic, k_magic, 8) != 0) {
        fail("%s: not a reap base-logits file", path.c_str());
    }
    if (hdr_.n_ctx != uint32_t(n_ctx)) {
        fail("%s: made with -c %u, this run uses -c %d", path.c_str(), hdr_.n_ctx, n_ctx);
    }
    tokens_.resize(hdr_.n_tokens);
    if (hdr_.n_vocab == 0 || hdr_.n_ctx < 2 || hdr_.n_tokens == 0 || hdr_.n_tokens > (uint64_t(1) << 34) ||
        !in_.read(reinterpret_cast<char *>(tokens_.data()), std::streamsize(tokens_.size() * sizeof(llama_token)))) {
        fail("%s: truncated or corrupt base-logits file", path.c_str());
    }
    // Every window holds n_ctx tokens but the last, so the stored stream gives the windows back.
    uint64_t n_rows = 0;
    for (size_t i = 0; i < tokens_.size(); i += hdr_.n_ctx) {
        windows_.emplace_back(tokens_.begin() + long(i), tokens_.begin() + long(std::min(tokens_.size(), i + hdr_.n_ctx)));
        n_rows += windows_.back().size() - 1;
    }
    rows_at_ = sizeof(hdr_) + hdr_.n_tokens * sizeof(llama_token);
    if (file_size(path) != rows_at_ + n_rows * hdr_.n_vocab * sizeof(float)) {
        fail("%s: truncated or corrupt base-logits file", path.c_str());
    }
}

void BaseLogitsReader::rewind() {
    in_.clear();
    in_.seekg(std::streamoff(rows_at_));
}

void BaseLogitsReader::read_row(std::vector<float> & row) {
    row.resize(hdr_.n_vocab);
    if (!in_.read(reinterpret_cast<char *>(row.data()), std::streamsize(row.size() * sizeof(float)))) {
        fail("%s: truncated base-logits file", path_.c_str());
    }
}

}  // namespace reap
