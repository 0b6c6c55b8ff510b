#include "profile/samples.h"

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "llama/llama_util.h"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

namespace reap {

using nlohmann::json;

uint64_t TokenizedSamples::total_tokens() const {
    uint64_t n = 0;
    for (const auto & t : tokens)
        n += t.size();
    return n;
}

size_t TokenizedSamples::samples_of_file(size_t f) const {
    size_t n = 0;
    for (size_t i = 0; i < tokens.size(); i++)
        n += file[i] == f ? 1 : 0;
    return n;
}

uint64_t TokenizedSamples::tokens_of_file(size_t f) const {
    uint64_t n = 0;
    for (size_t i = 0; i < tokens.size(); i++)
        n += file[i] == f ? tokens[i].size() : 0;
    return n;
}

ChatTemplate chat_template(const llama_model * model, const std::string & option) {
    if (option.empty()) {
        const char * t = llama_model_chat_template(model, nullptr);
        return {t != nullptr ? t : "", "the model's chat template"};
    }
    std::ifstream in(option, std::ios::binary);
    if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        return {ss.str(), "the chat template in " + option};
    }
    std::vector<const char *> names(size_t(llama_chat_builtin_templates(nullptr, 0)));
    llama_chat_builtin_templates(names.data(), names.size());
    std::string list;
    for (const char * n : names) {
        if (option == n) return {option, "chat template " + option};
        list += (list.empty() ? "" : ", ") + std::string(n);
    }
    fail("--chat-template %s: neither a file nor one of llama.cpp's templates (%s)", option.c_str(), list.c_str());
}

std::string render_chat(const ChatTemplate & tmpl, const json & messages, bool open_assistant_turn) {
    if (tmpl.text.empty()) {
        fail("a 'messages' sample needs a chat template, and the model has none (give --chat-template)");
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
    const char *      t = tmpl.text.c_str();
    std::vector<char> buf(total * 2 + 256);
    int32_t           n =
        llama_chat_apply_template(t, chat.data(), chat.size(), open_assistant_turn, buf.data(), int32_t(buf.size()));
    if (n > int32_t(buf.size())) {
        buf.resize(size_t(n) + 1);
        n = llama_chat_apply_template(t, chat.data(), chat.size(), open_assistant_turn, buf.data(),
                                      int32_t(buf.size()));
    }
    if (n < 0) {
        fail("llama.cpp's renderer does not know %s (give --chat-template NAME)", tmpl.source.c_str());
    }
    return std::string(buf.data(), size_t(n));
}

namespace {

// A sample that cannot be used is skipped with a warning (the first few shown, the rest
// counted), or fatal with --strict.
class SkippedSamples {
public:
    SkippedSamples(bool strict, std::vector<CalibFileReport> & report) : strict_(strict), report_(report) {}
    ~SkippedSamples() {
        if (n_ > k_shown) log_warn("%zu more samples skipped", n_ - k_shown);
    }
    void skip(const std::string & where, size_t file, const std::string & why) {
        if (strict_) fail("%s: %s", where.c_str(), why.c_str());
        if (n_++ < k_shown) log_warn("%s: %s; sample skipped", where.c_str(), why.c_str());
        if (file < report_.size()) report_[file].skipped++;
    }

private:
    static constexpr size_t        k_shown = 10;
    bool                           strict_;
    std::vector<CalibFileReport> & report_;
    size_t                         n_ = 0;
};

}  // namespace

TokenizedSamples tokenize_samples(const llama_model * model, const std::vector<CalibSample> & samples,
                                  const std::vector<std::string> & data, const SampleOptions & opts,
                                  std::vector<CalibFileReport> & report) {
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const ChatTemplate  tmpl  = chat_template(model, opts.chat_template);
    SkippedSamples      skipped(opts.strict, report);
    TokenizedSamples    out;
    for (const auto & s : samples) {
        std::vector<std::vector<llama_token>> windows;
        if (s.is_plain) {
            // llama-imatrix's (and llama-perplexity's) windows, so that `profile --imatrix` on a
            // .txt equals llama-imatrix on it; a tail shorter than a window is left out as they
            // leave it out, unless the file is shorter than one window.
            windows = perplexity_windows(vocab, s.text, opts.n_ctx);
            if (windows.empty()) windows = text_windows(vocab, s.text, opts.n_ctx);
        } else if (s.is_chat) {
            const std::string where = data[s.file] + (s.line ? ":" + std::to_string(s.line) : "");
            try {
                windows = sample_windows(vocab, tokenize(vocab, render_chat(tmpl, s.messages, false), true, true),
                                         opts.n_ctx);
            } catch (const Error & e) {
                skipped.skip(where, s.file, e.what());
            }
        } else {
            windows = sample_windows(vocab, tokenize(vocab, s.text, true, false), opts.n_ctx);
        }
        for (auto & win : windows) {
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
    for (size_t i = 0; i < order.size(); i++)
        order[i] = i;
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

void take_shard(TokenizedSamples & s, uint32_t index, uint32_t count) {
    TokenizedSamples out;
    for (size_t k = index - 1; k < s.size(); k += count) {
        out.tokens.push_back(std::move(s.tokens[k]));
        out.file.push_back(s.file[k]);
    }
    s = std::move(out);
}

void parse_shard(const std::string & text, uint32_t & index, uint32_t & count) {
    const size_t slash = text.find('/');
    uint64_t     i = 0, n = 0;
    if (slash == std::string::npos || !parse_canonical_uint(text.substr(0, slash), 1u << 20, i) ||
        !parse_canonical_uint(text.substr(slash + 1), 1u << 20, n) || i < 1 || i > n) {
        fail_usage("--shard %s: expected i/N with 1 <= i <= N (e.g. 2/4)", text.c_str());
    }
    index = uint32_t(i);
    count = uint32_t(n);
}

}  // namespace reap
