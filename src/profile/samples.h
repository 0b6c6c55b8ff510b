// Calibration samples as the token sequences the profiler decodes: chat rendering,
// tokenization, the context-size limit, the seeded shuffle and the --max-samples/--max-tokens cut.
#pragma once

#include "profile/calibration.h"

#include "llama.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

struct TokenizedSamples {
    std::vector<std::vector<llama_token>> tokens;  // one entry per decoded sequence
    std::vector<size_t>                   file;    // the data file (index) each sequence came from

    size_t   size() const { return tokens.size(); }
    uint64_t total_tokens() const;
    // Sequences and tokens that came from data file `f`.
    size_t   samples_of_file(size_t f) const;
    uint64_t tokens_of_file(size_t f) const;
};

// The template 'messages' samples are rendered with: --chat-template (one of llama.cpp's
// built-in names such as chatml or llama3, or a file holding a template), else the model's own.
struct ChatTemplate {
    std::string text;    // empty: the model has none and none was given
    std::string source;  // for messages: "the model's chat template", "chat template chatml", ...
};
ChatTemplate chat_template(const llama_model * model, const std::string & option);

// `messages` ([{role, content}, ...]) rendered with the template, followed by the start of an
// assistant turn when `open_assistant_turn` (a prompt to generate from); throws when the template
// is missing or llama.cpp's renderer does not know it.
std::string render_chat(const ChatTemplate & tmpl, const nlohmann::json & messages, bool open_assistant_turn);

struct SampleOptions {
    int         n_ctx = 512;
    std::string chat_template;   // see chat_template()
    bool        strict = false;  // a sample that cannot be rendered is fatal, not skipped
};

// Tokenizes every sample: .txt files become llama-imatrix's windows of n_ctx tokens
// (perplexity_windows: the tail is left out; a file shorter than a window is one), chat samples are rendered
// with the chat template, and a sample longer than n_ctx becomes consecutive windows
// (sample_windows), so no token is dropped. A chat sample that cannot be rendered is skipped
// with a warning and counted in report[file].skipped (fatal with `strict`). `data` names the
// files (for messages).
TokenizedSamples tokenize_samples(const llama_model * model, const std::vector<CalibSample> & samples,
                                  const std::vector<std::string> & data, const SampleOptions & opts,
                                  std::vector<CalibFileReport> & report);

// A tokenized sample cut into consecutive windows of at most n_ctx tokens; a window after the
// first starts with BOS when the sample does and the vocabulary adds one.
std::vector<std::vector<llama_token>> sample_windows(const llama_vocab * vocab, const std::vector<llama_token> & toks,
                                                     int n_ctx);

// Shuffles the order with a seeded Fisher-Yates (mt19937_64): the same seed, the same order.
void shuffle_samples(TokenizedSamples & s, uint64_t seed);

// Keeps the first max_samples sequences, then the first max_tokens tokens (the last sequence
// cut); a negative limit keeps everything.
void limit_samples(TokenizedSamples & s, long max_samples, long max_tokens);

// Keeps shard `index` (1-based) of `count`: the sequences k with k % count == index - 1, a
// deterministic, balanced 1/count of the selection (see `reap profile --shard`).
void take_shard(TokenizedSamples & s, uint32_t index, uint32_t count);

// "i/N" with 1 <= i <= N -> index, count; throws otherwise.
void parse_shard(const std::string & text, uint32_t & index, uint32_t & count);

}  // namespace reap
