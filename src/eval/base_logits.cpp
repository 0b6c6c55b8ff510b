#include "eval/base_logits.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace reap {

namespace {

constexpr char k_magic_float[8]   = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '1'};
constexpr char k_magic_compact[8] = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '2'};

}  // namespace

BaseLogitsWriter::BaseLogitsWriter(const std::string & path, uint32_t n_vocab, uint32_t n_ctx,
                                   const std::vector<std::vector<llama_token>> & windows, const std::string & base_name,
                                   uint64_t base_size)
    : out_(path) {
    std::vector<llama_token> flat;
    for (const auto & w : windows) flat.insert(flat.end(), w.begin(), w.end());
    std::memcpy(hdr_.magic, k_magic_compact, 8);
    hdr_.n_vocab        = n_vocab;
    hdr_.n_ctx          = n_ctx;
    hdr_.n_windows      = uint32_t(windows.size());
    hdr_.n_tokens       = flat.size();
    hdr_.base_file_size = base_size;
    std::strncpy(hdr_.base_name, base_name.c_str(), sizeof(hdr_.base_name) - 1);
    out_.write(&hdr_, sizeof(hdr_));
    out_.write(flat.data(), flat.size() * sizeof(llama_token));
}

void BaseLogitsWriter::write_row(const std::vector<float> & logprobs, llama_token next) {
    encode_row(logprobs, next, row_);
    out_.write(row_.data(), row_.size());
}

BaseLogitsReader::BaseLogitsReader(const std::string & path, int n_ctx) : path_(path), in_(path, std::ios::binary) {
    check_header(n_ctx);
    read_tokens();
}

// Rows of a token stream cut into windows of n_ctx: every position but a window's last.
static uint64_t predicted_positions(uint64_t n_tokens, uint64_t n_ctx) {
    const uint64_t rest = n_tokens % n_ctx;
    return n_tokens / n_ctx * (n_ctx - 1) + (rest > 0 ? rest - 1 : 0);
}

void BaseLogitsReader::check_header(int n_ctx) {
    if (!in_.read(reinterpret_cast<char *>(&hdr_), sizeof(hdr_)) ||
        (std::memcmp(hdr_.magic, k_magic_compact, 8) != 0 && std::memcmp(hdr_.magic, k_magic_float, 8) != 0)) {
        fail("%s: not a reap base-logits file", path_.c_str());
    }
    compact_ = std::memcmp(hdr_.magic, k_magic_compact, 8) == 0;
    hdr_.base_name[sizeof(hdr_.base_name) - 1] = '\0';
    if (hdr_.n_ctx != uint32_t(n_ctx)) {
        fail("%s: made with -c %u, this run uses -c %d", path_.c_str(), hdr_.n_ctx, n_ctx);
    }
    // The exact size follows from the header; compare before trusting any count in it (the
    // limits keep the products below 2^64).
    const uint64_t max_tokens = uint64_t(1) << 34;
    if (hdr_.n_vocab == 0 || hdr_.n_ctx < 2 || hdr_.n_tokens == 0 || hdr_.n_tokens > max_tokens) {
        fail("%s: truncated or corrupt base-logits file", path_.c_str());
    }
    const uint64_t n_rows = predicted_positions(hdr_.n_tokens, hdr_.n_ctx);
    rows_at_              = sizeof(hdr_) + hdr_.n_tokens * sizeof(llama_token);
    const uint64_t row_bytes = compact_ ? compact_row_bytes(hdr_.n_vocab) : uint64_t(sizeof(float)) * hdr_.n_vocab;
    const uint64_t size      = file_size(path_);
    if (n_rows == 0 || size < rows_at_ || (size - rows_at_) % row_bytes != 0 || (size - rows_at_) / row_bytes != n_rows) {
        fail("%s: truncated or corrupt base-logits file", path_.c_str());
    }
}

void BaseLogitsReader::read_tokens() {
    tokens_.resize(hdr_.n_tokens);
    if (!in_.read(reinterpret_cast<char *>(tokens_.data()), std::streamsize(tokens_.size() * sizeof(llama_token)))) {
        fail("%s: truncated or corrupt base-logits file", path_.c_str());
    }
    for (size_t i = 0; i < tokens_.size(); i++) {
        if (tokens_[i] < 0 || uint32_t(tokens_[i]) >= hdr_.n_vocab) {
            fail("%s: token %zu is %d, outside the vocabulary of %u tokens: corrupt base-logits file", path_.c_str(),
                 i, tokens_[i], hdr_.n_vocab);
        }
    }
    // Every window holds n_ctx tokens but the last, so the stored stream gives the windows back.
    for (size_t i = 0; i < tokens_.size(); i += hdr_.n_ctx) {
        windows_.emplace_back(tokens_.begin() + long(i), tokens_.begin() + long(std::min(tokens_.size(), i + hdr_.n_ctx)));
    }
}

void BaseLogitsReader::rewind() {
    in_.clear();
    in_.seekg(std::streamoff(rows_at_));
    row_ = 0;
}

void BaseLogitsReader::read_row(BaseRow & row, llama_token next) {
    bool ok = false;
    if (compact_) {
        bytes_.resize(compact_row_bytes(hdr_.n_vocab));
        if (!in_.read(reinterpret_cast<char *>(bytes_.data()), std::streamsize(bytes_.size()))) {
            fail("%s: truncated base-logits file", path_.c_str());
        }
        ok = decode_row(bytes_.data(), hdr_.n_vocab, row);
    } else {
        floats_.resize(hdr_.n_vocab);
        if (!in_.read(reinterpret_cast<char *>(floats_.data()), std::streamsize(floats_.size() * sizeof(float)))) {
            fail("%s: truncated base-logits file", path_.c_str());
        }
        // A log-probability is finite and at most 0: anything else would poison PPL and KL.
        ok = std::all_of(floats_.begin(), floats_.end(), [](float v) { return std::isfinite(v) && v <= 0.0f; });
        if (ok) exact_row(floats_, next, row);
    }
    if (!ok) {
        fail("%s: position %llu holds an impossible log-probability (NaN, infinite or above 0): corrupt base-logits "
             "file",
             path_.c_str(), (unsigned long long) row_);
    }
    row_++;
}

}  // namespace reap
