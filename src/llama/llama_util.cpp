#include "llama/llama_util.h"

#include "core/error.h"

#include <algorithm>

namespace reap {

void batch_add_outputs(llama_batch & batch, const std::vector<llama_token> & tokens, size_t from, size_t len,
                       llama_seq_id seq) {
    for (size_t i = from; i < from + len; i++) {
        const int k        = batch.n_tokens++;
        batch.token[k]     = tokens[i];
        batch.pos[k]       = llama_pos(i);
        batch.n_seq_id[k]  = 1;
        batch.seq_id[k][0] = seq;
        batch.logits[k]    = 1;
    }
}

std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool add_special,
                                  bool parse_special) {
    std::vector<llama_token> toks(text.size() + 16);
    int n = llama_tokenize(vocab, text.data(), int32_t(text.size()), toks.data(), int32_t(toks.size()), add_special,
                           parse_special);
    if (n < 0) {  // the buffer was too small: -n is the size needed
        toks.resize(size_t(-n));
        n = llama_tokenize(vocab, text.data(), int32_t(text.size()), toks.data(), int32_t(toks.size()), add_special,
                           parse_special);
    }
    if (n < 0) {
        fail("tokenization failed");
    }
    toks.resize(size_t(n));
    return toks;
}

std::vector<std::vector<llama_token>> text_windows(const llama_vocab * vocab, const std::string & text, int n_ctx,
                                                   long max_windows) {
    const auto                            toks = tokenize(vocab, text, false, false);
    const bool                            bos  = llama_vocab_get_add_bos(vocab);
    const size_t                          w    = size_t(n_ctx) - (bos ? 1 : 0);
    std::vector<std::vector<llama_token>> out;
    for (size_t i = 0; i < toks.size() && (max_windows < 0 || out.size() < size_t(max_windows)); i += w) {
        std::vector<llama_token> win;
        if (bos) win.push_back(llama_vocab_bos(vocab));
        win.insert(win.end(), toks.begin() + long(i), toks.begin() + long(std::min(toks.size(), i + w)));
        if (win.size() >= 2) out.push_back(std::move(win));
    }
    return out;
}

std::vector<std::vector<llama_token>> perplexity_windows(const llama_vocab * vocab, const std::string & file_text,
                                                         int n_ctx, long max_windows) {
    std::string text = file_text;
    if (!text.empty() && text.back() == '\n') text.pop_back();  // common's -f reader (common/arg.cpp)
    const auto                            toks = tokenize(vocab, text, true, false);
    const bool                            bos  = llama_vocab_get_add_bos(vocab);
    const size_t                          w    = size_t(n_ctx);
    std::vector<std::vector<llama_token>> out;
    for (size_t i = 0; i + w <= toks.size() && (max_windows < 0 || out.size() < size_t(max_windows)); i += w) {
        out.emplace_back(toks.begin() + long(i), toks.begin() + long(i + w));
        if (bos) out.back()[0] = llama_vocab_bos(vocab);
    }
    return out;
}

}  // namespace reap
