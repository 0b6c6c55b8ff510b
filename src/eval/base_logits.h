// The base logits file of `reap eval`: the base model's log-probabilities, computed once and
// compared with every pruned model. Layout: a header, the evaluated tokens (int32, windows of
// n_ctx tokens but the last), then for every window and every predicting position (all but the
// window's last token) one row: "REAPLGT2" files (written now) keep the compact row of
// eval/logprob_row.h, 2 bytes per vocabulary entry; "REAPLGT1" files (read only) n_vocab float32
// log-probabilities. Rows are streamed: memory does not grow with the number of tokens.
#pragma once

#include "core/atomic_file.h"
#include "eval/logprob_row.h"

#include "llama.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace reap {

struct BaseLogitsHeader {
    char     magic[8];
    uint32_t n_vocab, n_ctx, n_windows, reserved;
    uint64_t n_tokens;
    uint64_t base_file_size;
    char     base_name[256];
};

// Writes the file atomically: nothing appears under `path` before commit().
class BaseLogitsWriter {
public:
    // `base_name` and `base_size` identify the base model (file name, bytes of all its files).
    BaseLogitsWriter(const std::string & path, uint32_t n_vocab, uint32_t n_ctx,
                     const std::vector<std::vector<llama_token>> & windows, const std::string & base_name,
                     uint64_t base_size);
    const BaseLogitsHeader & header() const { return hdr_; }
    // The next position: n_vocab exact log-probabilities and the token that came next.
    void                     write_row(const std::vector<float> & logprobs, llama_token next);
    void                     commit() { out_.commit(); }

private:
    BaseLogitsHeader     hdr_{};
    AtomicFile           out_;
    std::vector<uint8_t> row_;
};

// Reads a file back. An untrusted file: the header is checked against `n_ctx` (this run's -c)
// and against the file's size before anything is allocated, every token against the
// vocabulary, and every log-probability as it is read (finite, at most 0).
class BaseLogitsReader {
public:
    BaseLogitsReader(const std::string & path, int n_ctx);
    const std::string &                           path() const { return path_; }
    const BaseLogitsHeader &                      header() const { return hdr_; }
    const std::vector<llama_token> &              tokens() const { return tokens_; }
    const std::vector<std::vector<llama_token>> & windows() const { return windows_; }

    void rewind();                            // back to the first row
    // The next position's row; `next` is the token that came next (for the older format).
    void read_row(BaseRow & row, llama_token next);

private:
    std::string                           path_;
    std::ifstream                         in_;
    BaseLogitsHeader                      hdr_{};
    std::vector<llama_token>              tokens_;
    std::vector<std::vector<llama_token>> windows_;
    uint64_t                              rows_at_ = 0;  // byte offset of the first row
    uint64_t                              row_     = 0;  // index of the next row (for messages)
    bool                                  compact_ = true;  // REAPLGT2 rows, else float32
    std::vector<uint8_t>                  bytes_;
    std::vector<float>                    floats_;

    void check_header(int n_ctx);
    void read_tokens();
};

}  // namespace reap
