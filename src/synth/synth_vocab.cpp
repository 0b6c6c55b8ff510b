#include "synth/synth_vocab.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace reap::synth {

static const char * const k_space = "\xE2\x96\x81";  // U+2581, SentencePiece's space marker

// The text the merges are learned from: ordinary prose, a little dialogue, maths and code,
// so common fragments of any calibration text become single tokens.
static const char * const k_corpus =
    "The quick brown fox jumps over the lazy dog. In the beginning there was the word, and the word was "
    "with the people who read it. A model of the world is only as good as the data that it was trained on. "
    "When we talk about language, we mean the way that people share what they think and what they know. "
    "This is a simple example of a text that has many of the most common words in English: the, of, and, "
    "to, in, is, that, for, it, as, was, with, be, by, on, not, he, she, they, this, which, are, or, his, "
    "her, from, at, have, an, but, had, what, all, were, when, we, there, can, one, would, their, will, "
    "each, about, how, up, out, them, then, many, some, so, these, into, other, more, time, could, than. "
    "Question: what is the capital of France? Answer: the capital of France is Paris. "
    "User: can you help me write a function that returns the sum of a list? Assistant: of course, here is "
    "one way to write it in Python: def total(values): return sum(values). "
    "Let x be a number such that 2x + 3 = 11. Then 2x = 8 and therefore x = 4. The sum of the first n "
    "integers is n(n + 1) / 2, and the square of the hypotenuse equals the sum of the squares of the "
    "other two sides. "
    "int main(int argc, char ** argv) { for (int i = 0; i < argc; i++) { printf(\"%s\\n\", argv[i]); } "
    "return 0; } const std::vector<float> values = load(path); if (values.empty()) { throw error; } "
    "The experts that are selected most often are not always the ones that matter the most for the "
    "output of the model, which is why the router weight and the size of the expert output are both "
    "taken into account when we decide which experts to remove from each layer of the network.";

static std::vector<std::string> utf8_chars(const std::string & s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = (unsigned char) s[i];
        const size_t        n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

// Classic BPE on whitespace-separated words, each prefixed with the space marker.
static std::vector<std::string> learn_merges(int n_merges) {
    std::map<std::string, int> word_freq;
    {
        std::istringstream in(k_corpus);
        std::string        w;
        while (in >> w) {
            word_freq[k_space + w]++;
        }
    }
    std::vector<std::pair<std::vector<std::string>, int>> words;
    for (const auto & [w, n] : word_freq) {
        words.push_back({utf8_chars(w), n});
    }
    std::vector<std::string> merges;
    for (int m = 0; m < n_merges; m++) {
        std::map<std::pair<std::string, std::string>, int> pairs;  // ordered: deterministic ties
        for (const auto & [sym, n] : words) {
            for (size_t i = 0; i + 1 < sym.size(); i++) {
                pairs[{sym[i], sym[i + 1]}] += n;
            }
        }
        auto best = pairs.end();
        for (auto it = pairs.begin(); it != pairs.end(); ++it) {
            if (best == pairs.end() || it->second > best->second) {
                best = it;
            }
        }
        if (best == pairs.end() || best->second < 2) {
            break;
        }
        const std::string merged = best->first.first + best->first.second;
        merges.push_back(merged);
        for (auto & [sym, n] : words) {
            std::vector<std::string> next;
            for (size_t i = 0; i < sym.size(); i++) {
                if (i + 1 < sym.size() && sym[i] == best->first.first && sym[i + 1] == best->first.second) {
                    next.push_back(merged);
                    i++;
                } else {
                    next.push_back(sym[i]);
                }
            }
            sym = std::move(next);
        }
    }
    return merges;
}

uint32_t add_vocab(gguf_context * ctx, int n_merges) {
    enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6 };
    std::vector<std::string> tokens;
    std::vector<float>       scores;
    std::vector<int32_t>     types;
    std::set<std::string>    seen;
    auto                     add = [&](const std::string & t, float score, int type) {
        if (seen.insert(t).second) {
            tokens.push_back(t);
            scores.push_back(score);
            types.push_back(type);
        }
    };
    add("<unk>", 0.0f, UNKNOWN);
    add("<s>", 0.0f, CONTROL);
    add("</s>", 0.0f, CONTROL);
    add("<|im_start|>", 0.0f, CONTROL);
    add("<|im_end|>", 0.0f, CONTROL);
    for (int b = 0; b < 256; b++) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
        add(buf, 0.0f, BYTE);
    }
    // Single characters are never the result of a merge, so their score does not matter.
    add(k_space, -1e6f, NORMAL);
    for (char c = 33; c < 127; c++) {
        add(std::string(1, c), -1e6f, NORMAL);
    }
    const auto merges = learn_merges(n_merges);
    for (size_t r = 0; r < merges.size(); r++) {
        add(merges[r], -float(r + 1), NORMAL);
    }

    std::vector<const char *> ptrs;
    for (const auto & t : tokens) {
        ptrs.push_back(t.c_str());
    }
    gguf_set_val_str(ctx, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(ctx, "tokenizer.ggml.tokens", ptrs.data(), ptrs.size());
    gguf_set_arr_data(ctx, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), scores.size());
    gguf_set_arr_data(ctx, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
    gguf_set_val_u32(ctx, "tokenizer.ggml.unknown_token_id", 0);
    gguf_set_val_u32(ctx, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_val_u32(ctx, "tokenizer.ggml.eos_token_id", 2);
    gguf_set_val_u32(ctx, "tokenizer.ggml.padding_token_id", 0);
    gguf_set_val_bool(ctx, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(ctx, "tokenizer.ggml.add_eos_token", false);
    gguf_set_val_str(ctx, "tokenizer.chat_template",
                     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                     "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
                     "}}{% endif %}");
    return uint32_t(tokens.size());
}

}  // namespace reap::synth
