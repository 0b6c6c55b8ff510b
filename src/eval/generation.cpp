#include "eval/generation.h"

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"
#include "profile/calibration.h"
#include "profile/samples.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace reap {

using nlohmann::json;

namespace {

// The chat without a final assistant message: its answer is what the model is to generate.
json without_final_answer(const json & messages) {
    json m = messages;
    if (!m.empty() && m.back()["role"] == "assistant") m.erase(m.size() - 1);
    return m;
}

// A .txt prompts file: one prompt per non-blank line.
void add_lines(const std::string & text, std::vector<std::string> & out) {
    std::istringstream in(text);
    std::string        line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") != std::string::npos) out.push_back(line);
    }
}

// Keeps the last max_tokens tokens (the first one too when it is BOS); false when nothing was cut.
bool keep_last(std::vector<llama_token> & toks, const llama_vocab * vocab, int max_tokens) {
    const size_t max = size_t(max_tokens);
    if (toks.size() <= max) return false;
    const bool               bos = llama_vocab_get_add_bos(vocab) && toks.front() == llama_vocab_bos(vocab);
    std::vector<llama_token> out;
    if (bos) out.push_back(toks.front());
    out.insert(out.end(), toks.end() - long(max - out.size()), toks.end());
    toks = std::move(out);
    return true;
}

std::string detokenize(const llama_vocab * vocab, const std::vector<int32_t> & toks) {
    if (toks.empty()) return "";
    std::vector<char> buf(toks.size() * 16 + 16);
    int32_t           n =
        llama_detokenize(vocab, toks.data(), int32_t(toks.size()), buf.data(), int32_t(buf.size()), false, false);
    if (n < 0) {
        buf.resize(size_t(-n));
        n = llama_detokenize(vocab, toks.data(), int32_t(toks.size()), buf.data(), int32_t(buf.size()), false, false);
    }
    return n < 0 ? "" : std::string(buf.data(), size_t(n));
}

// Decodes `toks` at positions from `pos`, the last one an output.
void decode(const LlamaRuntime & m, const std::vector<llama_token> & toks, llama_pos pos) {
    LlamaBatch batch(int32_t(toks.size()));
    for (size_t i = 0; i < toks.size(); i++) {
        batch.b.token[i]     = toks[i];
        batch.b.pos[i]       = pos + llama_pos(i);
        batch.b.n_seq_id[i]  = 1;
        batch.b.seq_id[i][0] = 0;
        batch.b.logits[i]    = i + 1 == toks.size();
    }
    batch.b.n_tokens = int32_t(toks.size());
    const int rc     = llama_decode(m.ctx.get(), batch.b);
    if (rc != 0) fail("llama_decode failed (%d) while generating", rc);
}

llama_token argmax_last(const LlamaRuntime & m, int32_t n_vocab) {
    const float * logits = llama_get_logits_ith(m.ctx.get(), -1);
    int32_t       best   = 0;
    for (int32_t v = 1; v < n_vocab; v++)
        if (logits[v] > logits[best]) best = v;
    return best;
}

}  // namespace

std::string prompt_budget_problem(int n_ctx, int n_tokens) {
    if (n_tokens >= 1 && n_ctx - n_tokens >= k_min_prompt_tokens) return "";
    return strfmt(
        "--gen-tokens %d leaves %d of the -c %d tokens for the prompt, fewer than %d: every prompt would be cut to "
        "its last tokens; lower --gen-tokens or raise -c",
        n_tokens, n_ctx - n_tokens, n_ctx, k_min_prompt_tokens);
}

void check_prompt_budget_option(const GenerationOptions & opts, int n_ctx) {
    if (opts.prompts.empty() || n_ctx <= 0) return;
    const std::string problem = prompt_budget_problem(n_ctx, opts.n_tokens);
    if (!problem.empty()) fail_usage("%s", problem.c_str());
}

std::vector<Prompt> load_prompts(const llama_model * model, const GenerationOptions & opts, int max_tokens) {
    const auto          samples = load_prompt_samples(opts.prompts);
    const llama_vocab * vocab   = llama_model_get_vocab(model);
    ChatTemplate        tmpl;
    bool                tmpl_read = false;
    std::vector<Prompt> out;
    auto                add = [&](const std::string & text, const std::string & shown, bool special) {
        Prompt p;
        p.tokens = tokenize(vocab, text, true, special);
        p.cut    = keep_last(p.tokens, vocab, max_tokens);
        // a cut prompt shows what the models continue, not the text they never saw
        p.shown = valid_utf8(p.cut ? detokenize(vocab, p.tokens) : shown);
        if (!p.tokens.empty()) out.push_back(std::move(p));
    };
    for (const auto & s : samples) {
        const std::string where = opts.prompts + ":" + std::to_string(s.line);
        if (s.is_plain) {
            std::vector<std::string> lines;
            add_lines(s.text, lines);
            for (const auto & l : lines)
                add(l, l, false);
        } else if (s.is_chat) {
            const json m = without_final_answer(s.messages);
            if (m.empty()) fail("%s: no message before the assistant's answer to generate from", where.c_str());
            if (!tmpl_read) {
                tmpl      = chat_template(model, opts.chat_template);
                tmpl_read = true;
            }
            try {
                add(render_chat(tmpl, m, true), m.back()["content"].get<std::string>(), true);
            } catch (const Error & e) {
                fail("%s: %s", where.c_str(), e.what());
            }
        } else {
            add(s.prompt, s.prompt, false);
        }
    }
    if (out.empty()) fail("%s: no prompts in the prompts file (only blank lines)", opts.prompts.c_str());
    return out;
}

void note_cut_prompts(const std::vector<Prompt> & prompts, int max_tokens) {
    const size_t cut = size_t(std::count_if(prompts.begin(), prompts.end(), [](const Prompt & p) { return p.cut; }));
    if (cut > 0) {
        log_warn(
            "%zu of %zu prompts are longer than the %d tokens -c leaves beside --gen-tokens: cut to their last %d "
            "tokens (the table shows what is kept)",
            cut, prompts.size(), max_tokens, max_tokens);
    }
}

std::vector<Continuation> greedy_continuations(const LlamaRuntime & m, const std::vector<Prompt> & prompts,
                                               int n_tokens, const std::string & what, bool progress) {
    const llama_vocab * vocab   = m.vocab();
    const int32_t       n_vocab = llama_vocab_n_tokens(vocab);
    const int           n_ctx   = int(llama_n_ctx(m.ctx.get()));
    Progress            bar("generate " + what, uint64_t(prompts.size()) * uint64_t(n_tokens), "tokens", progress);
    std::vector<Continuation> out;
    for (size_t k = 0; k < prompts.size(); k++) {
        const auto & p = prompts[k];
        if (int(p.tokens.size()) + n_tokens > n_ctx) {
            fail("internal: prompt %zu of %zu tokens and %d to generate exceed the context of %d", k + 1,
                 p.tokens.size(), n_tokens, n_ctx);
        }
        llama_memory_clear(m.memory(), true);
        decode(m, p.tokens, 0);
        Continuation c;
        llama_pos    pos = llama_pos(p.tokens.size());
        while (int(c.tokens.size()) < n_tokens) {
            const llama_token t = argmax_last(m, n_vocab);
            if (llama_vocab_is_eog(vocab, t)) {
                c.ended = true;
                break;
            }
            c.tokens.push_back(t);
            if (int(c.tokens.size()) == n_tokens) break;
            decode(m, {t}, pos++);
        }
        out.push_back(std::move(c));
        bar.update(uint64_t(k + 1) * uint64_t(n_tokens));
    }
    bar.finish();
    return out;
}

GenerationScore compare_continuations(const llama_vocab * vocab, const std::vector<Prompt> & prompts,
                                      const std::vector<Continuation> & base, const std::vector<Continuation> & mine,
                                      const GenerationOptions & opts) {
    GenerationScore s = score_continuations(base, mine);
    s.n_tokens        = opts.n_tokens;
    for (size_t k = 0; k < std::min(opts.n_examples, prompts.size()); k++) {
        // --gen-tokens may end inside a character, and a byte-fallback vocabulary may generate
        // bytes that form none: U+FFFD for those, as JSON, CSV and HTML take only valid UTF-8
        const std::string text = valid_utf8(detokenize(vocab, mine[k].tokens));
        s.examples.push_back({prompts[k].shown, text + (mine[k].ended ? "<end>" : "")});
    }
    return s;
}

std::string one_line(const std::string & text, size_t max_chars, bool keep_end) {
    std::string s = text;
    if (s.size() > max_chars) {
        size_t from = keep_end ? s.size() - max_chars : 0;
        size_t to   = keep_end ? s.size() : max_chars;
        // not inside a UTF-8 character: continuation bytes are 10xxxxxx
        while (keep_end && from < s.size() && (static_cast<unsigned char>(s[from]) & 0xC0) == 0x80)
            from++;
        while (!keep_end && to > 0 && (static_cast<unsigned char>(s[to]) & 0xC0) == 0x80)
            to--;
        s = (keep_end ? "..." : "") + s.substr(from, to - from) + (keep_end ? "" : "...");
    }
    std::string out;
    for (char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (ch == '\n')
            out += "\\n";
        else if (ch == '\t')
            out += "\\t";
        else if (c < 0x20 || c == 0x7f)
            out += '?';
        else
            out += ch;
    }
    return out;
}

}  // namespace reap
