// The base logits file of `reap eval`: the base model's log-probabilities, computed once and
// compared with every pruned model. Layout (format 3, magic "REAPLGT3"): a header, the
// evaluated tokens (int32, windows of n_ctx tokens but the last), then for every window and
// every scored position (from `first_scored` to the window's last token but one) a
// QuantizedRow (eval/logprob_codec.h): 12 bytes + 2 bytes per vocabulary entry. Both sides
// stream: one row is in memory at a time, however many tokens the file holds.
#pragma once

#include "core/atomic_file.h"
#include "eval/logprob_codec.h"

#include "llama.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace reap {

struct BaseLogitsHeader {
    char     magic[8];
    uint32_t n_vocab, n_ctx, n_windows;
    uint32_t first_scored;  // position of a window from which rows are stored (0, or n_ctx / 2)
    uint64_t n_tokens;
    uint64_t base_file_size;
    char     base_name[256];
    uint64_t base_content_id;  // gguf/content_id.h: the base itself, whatever its file is called
};

// One stored position: the base's log-probabilities (decoded) and the exact log-probability of
// the token that came next.
struct BaseRow {
    std::vector<float> logprobs;
    float              next_logprob = 0;
};

// Writes the file atomically: nothing appears under `path` before commit().
class BaseLogitsWriter {
public:
    // The base model: its content id identifies it; its file name and size are shown in messages.
    struct Base {
        std::string name;
        uint64_t    size       = 0;
        uint64_t    content_id = 0;
    };
    BaseLogitsWriter(const std::string & path, uint32_t n_vocab, uint32_t n_ctx, uint32_t first_scored,
                     const std::vector<std::vector<llama_token>> & windows, const Base & base);
    const BaseLogitsHeader & header() const { return hdr_; }
    // One scored position's n_vocab log-probabilities and the token that came next.
    void write_row(const std::vector<float> & logprobs, llama_token next);
    void commit() { out_.commit(); }

private:
    BaseLogitsHeader hdr_{};
    AtomicFile       out_;
    QuantizedRow     row_;
};

// Reads a file back. An untrusted file: the header is checked against this run's -c and scored
// positions and against the file's size before anything is allocated, every token against the
// vocabulary, and every row as it is read (eval/logprob_codec.h: invalid_quantized_row).
class BaseLogitsReader {
public:
    BaseLogitsReader(const std::string & path, int n_ctx, uint32_t first_scored);
    const std::string &                           path() const { return path_; }
    const BaseLogitsHeader &                      header() const { return hdr_; }
    const std::vector<llama_token> &              tokens() const { return tokens_; }
    const std::vector<std::vector<llama_token>> & windows() const { return windows_; }

    void rewind();  // back to the first row
    // The next scored position's row; `next` is the token that came next there.
    void read_row(BaseRow & row, llama_token next);

private:
    std::string                           path_;
    std::ifstream                         in_;
    BaseLogitsHeader                      hdr_{};
    std::vector<llama_token>              tokens_;
    std::vector<std::vector<llama_token>> windows_;
    QuantizedRow                          row_;
    uint64_t                              rows_at_ = 0;  // byte offset of the first row
    uint64_t                              row_no_  = 0;  // index of the next row (for messages)

    void check_header(int n_ctx, uint32_t first_scored);
    void read_tokens();
};

// Bytes of a file of `n_tokens` tokens cut into windows of n_ctx, rows from `first_scored`.
uint64_t base_logits_file_size(uint64_t n_tokens, uint32_t n_ctx, uint32_t first_scored, uint32_t n_vocab);

// Scored positions of a token stream cut into windows of n_ctx: in every window, the positions
// from first_scored to its last but one.
uint64_t scored_positions(uint64_t n_tokens, uint64_t n_ctx, uint64_t first_scored);

}  // namespace reap
