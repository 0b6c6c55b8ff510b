#include "eval/base_logits.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <algorithm>
#include <cstring>

namespace reap {

namespace {

constexpr char k_magic[8]    = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '3'};
constexpr char k_magic_v1[8] = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '1'};  // float32 rows, before 2026-11
constexpr char k_magic_v2[8] = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '2'};  // base known by name and size only

uint64_t row_bytes(uint32_t n_vocab) { return k_quantized_row_header + uint64_t(sizeof(uint16_t)) * n_vocab; }

}  // namespace

uint64_t scored_positions(uint64_t n_tokens, uint64_t n_ctx, uint64_t first_scored) {
    auto in_window = [&](uint64_t len) { return len > first_scored + 1 ? len - 1 - first_scored : 0; };
    return n_tokens / n_ctx * in_window(n_ctx) + in_window(n_tokens % n_ctx);
}

uint64_t base_logits_file_size(uint64_t n_tokens, uint32_t n_ctx, uint32_t first_scored, uint32_t n_vocab) {
    return sizeof(BaseLogitsHeader) + n_tokens * sizeof(llama_token) +
           scored_positions(n_tokens, n_ctx, first_scored) * row_bytes(n_vocab);
}

BaseLogitsWriter::BaseLogitsWriter(const std::string & path, uint32_t n_vocab, uint32_t n_ctx, uint32_t first_scored,
                                   const std::vector<std::vector<llama_token>> & windows, const Base & base)
    : out_(path) {
    std::vector<llama_token> flat;
    for (const auto & w : windows)
        flat.insert(flat.end(), w.begin(), w.end());
    std::memcpy(hdr_.magic, k_magic, 8);
    hdr_.n_vocab         = n_vocab;
    hdr_.n_ctx           = n_ctx;
    hdr_.n_windows       = uint32_t(windows.size());
    hdr_.first_scored    = first_scored;
    hdr_.n_tokens        = flat.size();
    hdr_.base_file_size  = base.size;
    hdr_.base_content_id = base.content_id;
    std::strncpy(hdr_.base_name, base.name.c_str(), sizeof(hdr_.base_name) - 1);
    out_.write(&hdr_, sizeof(hdr_));
    out_.write(flat.data(), flat.size() * sizeof(llama_token));
}

void BaseLogitsWriter::write_row(const std::vector<float> & logprobs, llama_token next) {
    encode_logprob_row(logprobs.data(), logprobs.size(), next, row_);
    const float head[3] = {row_.scale, row_.floor, row_.next_logprob};
    out_.write(head, sizeof(head));
    out_.write(row_.codes.data(), row_.codes.size() * sizeof(uint16_t));
}

BaseLogitsReader::BaseLogitsReader(const std::string & path, int n_ctx, uint32_t first_scored)
    : path_(path), in_(path, std::ios::binary) {
    check_header(n_ctx, first_scored);
    read_tokens();
}

void BaseLogitsReader::check_header(int n_ctx, uint32_t first_scored) {
    // The magic first: an older format is named as such, whatever its header's size.
    if (!in_.read(hdr_.magic, sizeof(hdr_.magic))) fail("%s: not a reap base-logits file", path_.c_str());
    const bool v1 = std::memcmp(hdr_.magic, k_magic_v1, 8) == 0, v2 = std::memcmp(hdr_.magic, k_magic_v2, 8) == 0;
    if (v1 || v2) {
        fail(
            "%s: a base-logits file of an older reap (%s); delete it and run eval with -m BASE to write it "
            "again",
            path_.c_str(), v1 ? "float32 rows" : "its base known by file name and size only, not by content");
    }
    if (std::memcmp(hdr_.magic, k_magic, 8) != 0 ||
        !in_.read(reinterpret_cast<char *>(&hdr_) + sizeof(hdr_.magic), sizeof(hdr_) - sizeof(hdr_.magic))) {
        fail("%s: not a reap base-logits file", path_.c_str());
    }
    hdr_.base_name[sizeof(hdr_.base_name) - 1] = '\0';
    if (hdr_.n_ctx != uint32_t(n_ctx)) {
        fail("%s: made with -c %u, this run uses -c %d", path_.c_str(), hdr_.n_ctx, n_ctx);
    }
    if (hdr_.first_scored != first_scored) {
        auto name = [&](uint32_t first) {
            return first == 0 ? std::string("all") : first == hdr_.n_ctx / 2 ? "second-half" : std::to_string(first);
        };
        fail("%s: made with --ppl-convention %s, this run uses %s", path_.c_str(), name(hdr_.first_scored).c_str(),
             name(first_scored).c_str());
    }
    // The exact size follows from the header; compare before trusting any count in it (the
    // limits keep the products below 2^64).
    const uint64_t max_tokens = uint64_t(1) << 34;
    if (hdr_.n_vocab == 0 || hdr_.n_ctx < 2 || hdr_.n_tokens == 0 || hdr_.n_tokens > max_tokens ||
        hdr_.n_windows != (hdr_.n_tokens + hdr_.n_ctx - 1) / hdr_.n_ctx) {
        fail("%s: truncated or corrupt base-logits file", path_.c_str());
    }
    rows_at_ = sizeof(hdr_) + hdr_.n_tokens * sizeof(llama_token);
    if (scored_positions(hdr_.n_tokens, hdr_.n_ctx, hdr_.first_scored) == 0 ||
        file_size(path_) != base_logits_file_size(hdr_.n_tokens, hdr_.n_ctx, hdr_.first_scored, hdr_.n_vocab)) {
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
            fail("%s: token %zu is %d, outside the vocabulary of %u tokens: corrupt base-logits file", path_.c_str(), i,
                 tokens_[i], hdr_.n_vocab);
        }
    }
    // Every window holds n_ctx tokens but the last, so the stored stream gives the windows back.
    for (size_t i = 0; i < tokens_.size(); i += hdr_.n_ctx) {
        windows_.emplace_back(tokens_.begin() + long(i),
                              tokens_.begin() + long(std::min(tokens_.size(), i + hdr_.n_ctx)));
    }
}

void BaseLogitsReader::rewind() {
    in_.clear();
    in_.seekg(std::streamoff(rows_at_));
    row_no_ = 0;
}

void BaseLogitsReader::read_row(BaseRow & out, llama_token next) {
    float head[3];
    row_.codes.resize(hdr_.n_vocab);
    if (!in_.read(reinterpret_cast<char *>(head), sizeof(head)) ||
        !in_.read(reinterpret_cast<char *>(row_.codes.data()), std::streamsize(row_.codes.size() * sizeof(uint16_t)))) {
        fail("%s: truncated base-logits file", path_.c_str());
    }
    row_.scale        = head[0];
    row_.floor        = head[1];
    row_.next_logprob = head[2];
    // Anything but a row the writer could have made would poison PPL and KL.
    if (const char * why = invalid_quantized_row(row_, next)) {
        fail("%s: position %llu holds %s: corrupt base-logits file", path_.c_str(), (unsigned long long) row_no_, why);
    }
    decode_logprob_row(row_, out.logprobs);
    out.next_logprob = row_.next_logprob;
    row_no_++;
}

}  // namespace reap
