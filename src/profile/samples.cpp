#include "profile/samples.h"

#include "core/error.h"
#include "llama/llama_util.h"

#include <algorithm>
#include <random>

namespace reap {

using nlohmann::json;

uint64_t TokenizedSamples::total_tokens() const {
    uint64_t n = 0;
    for (const auto & t : tokens) n += t.size();
    return n;
}

size_t TokenizedSamples::samples_of_file(size_t f) const {
    size_t n = 0;
    for (size_t i = 0; i < tokens.size(); i++) n += file[i] == f ? 1 : 0;
    return n;
}

uint64_t TokenizedSamples::tokens_of_file(size_t f) const {
    uint64_t n = 0;
    for (size_t i = 0; i < tokens.size(); i++) n += file[i] == f ? tokens[i].size() : 0;
    return n;
}

namespace {

std::string render_chat(const llama_model * model, const json & messages, const std::string & where) {
    const char * tmpl = llama_model_chat_template(model, nullptr);
    if (tmpl == nullptr) {
        fail("%s: a 'messages' sample needs a chat template, and the model has none", where.c_str());
    }
    std::vector<std::string> roles, contents;
    for (const auto & m : messages) {
        roles.push_back(m["role"].get<std::string>());
        contents.push_back(m["content"].get<std::string>());
    }
    std::vector<llama_chat_message> chat;
    size_t                          total = 0;
    for (size_t i = 0; i < roles.size(); i++) {
        chat.push_back({roles[i].c_str(), contents[i].c_str()});
        total += roles[i].size() + contents[i].size();
    }
    std::vector<char> buf(total * 2 + 256);
    int32_t           n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), false, buf.data(), int32_t(buf.size()));
    if (n > int32_t(buf.size())) {
        buf.resize(size_t(n) + 1);
        n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), false, buf.data(), int32_t(buf.size()));
    }
    if (n < 0) {
        fail("%s: llama.cpp does not support the model's chat template", where.c_str());
    }
    return std::string(buf.data(), size_t(n));
}

}  // namespace

TokenizedSamples tokenize_samples(const llama_model * model, const std::vector<CalibSample> & samples,
                                  const std::vector<std::string> & data, int n_ctx) {
    const llama_vocab * vocab = llama_model_get_vocab(model);
    TokenizedSamples    out;
    for (const auto & s : samples) {
        if (s.is_plain) {
            for (auto & win : text_windows(vocab, s.text, n_ctx)) {
                out.tokens.push_back(std::move(win));
                out.file.push_back(s.file);
            }
            continue;
        }
        const std::string where = data[s.file] + (s.line ? ":" + std::to_string(s.line) : "");
        const auto toks = s.is_chat ? tokenize(vocab, render_chat(model, s.messages, where), true, true)
                                    : tokenize(vocab, s.text, true, false);
        for (auto & win : sample_windows(vocab, toks, n_ctx)) {
            out.tokens.push_back(std::move(win));
            out.file.push_back(s.file);
        }
    }
    return out;
}

std::vector<std::vector<llama_token>> sample_windows(const llama_vocab * vocab, const std::vector<llama_token> & toks,
                                                     int n_ctx) {
    std::vector<std::vector<llama_token>> out;
    if (toks.empty()) {
        return out;
    }
    const size_t ctx = size_t(n_ctx);
    out.emplace_back(toks.begin(), toks.begin() + long(std::min(ctx, toks.size())));
    // Continuations start with BOS again when the vocabulary adds one, as .txt windows do.
    const bool   bos  = llama_vocab_get_add_bos(vocab) && toks.front() == llama_vocab_bos(vocab);
    const size_t step = ctx - (bos ? 1 : 0);
    for (size_t i = out.front().size(); i < toks.size(); i += step) {
        std::vector<llama_token> win;
        if (bos) win.push_back(llama_vocab_bos(vocab));
        win.insert(win.end(), toks.begin() + long(i), toks.begin() + long(std::min(toks.size(), i + step)));
        out.push_back(std::move(win));
    }
    return out;
}

void shuffle_samples(TokenizedSamples & s, uint64_t seed) {
    std::vector<size_t> order(s.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::mt19937_64 rng(seed);
    for (size_t i = order.size(); i > 1; i--) {
        std::swap(order[i - 1], order[size_t(rng() % i)]);
    }
    TokenizedSamples shuffled;
    for (size_t i : order) {
        shuffled.tokens.push_back(std::move(s.tokens[i]));
        shuffled.file.push_back(s.file[i]);
    }
    s = std::move(shuffled);
}

void limit_samples(TokenizedSamples & s, long max_samples, long max_tokens) {
    auto & items = s.tokens;
    if (max_samples >= 0 && items.size() > size_t(max_samples)) {
        items.resize(size_t(max_samples));
    }
    if (max_tokens >= 0) {
        uint64_t sum = 0;
        for (size_t i = 0; i < items.size(); i++) {
            if (sum + items[i].size() >= uint64_t(max_tokens)) {
                items[i].resize(size_t(uint64_t(max_tokens) - sum));
                items.resize(items[i].empty() ? i : i + 1);
                break;
            }
            sum += items[i].size();
        }
    }
    s.file.resize(items.size());
}

}  // namespace reap
