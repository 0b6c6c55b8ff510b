#include "eval/evaluator.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "llama/llama_util.h"
#include "moe/inspect.h"
#include "core/progress.h"

#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace reap {

void log_softmax(const float * logits, size_t n, std::vector<float> & out) {
    double mx = logits[0];
    for (size_t i = 1; i < n; i++) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += std::exp(double(logits[i]) - mx);
    const double lse = mx + std::log(sum);
    out.resize(n);
    for (size_t i = 0; i < n; i++) out[i] = float(double(logits[i]) - lse);
}

TokenComparison compare_token(const float * base_lp, const float * model_lp, size_t n_vocab, int32_t next) {
    double kl = 0;
    size_t ab = 0, am = 0;
    for (size_t v = 0; v < n_vocab; v++) {
        const double p = std::exp(double(base_lp[v]));
        kl += p * (double(base_lp[v]) - double(model_lp[v]));
        if (base_lp[v] > base_lp[ab]) ab = v;
        if (model_lp[v] > model_lp[am]) am = v;
    }
    return {std::max(0.0, kl), -double(model_lp[next]), ab == am};
}

namespace {

// The base logits file: a header, the evaluated tokens, then for every window and every
// predicting position the base model's log-probabilities (float32, n_vocab each).
constexpr char     k_magic[8] = {'R', 'E', 'A', 'P', 'L', 'G', 'T', '1'};
struct LogitsHeader {
    char     magic[8];
    uint32_t n_vocab, n_ctx, n_windows, reserved;
    uint64_t n_tokens;
    uint64_t base_file_size;
    char     base_name[256];
};

struct Loaded {
    LlamaModelPtr   model;
    LlamaContextPtr ctx;
};

Loaded load(const std::string & path, const EvalOptions & o) {
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers       = o.n_gpu_layers;
    Loaded l;
    l.model.reset(llama_model_load_from_file(path.c_str(), mp));
    if (!l.model) fail("%s: llama.cpp could not load the model", path.c_str());
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = uint32_t(o.n_ctx);
    cp.n_threads = cp.n_threads_batch = o.n_threads > 0 ? o.n_threads : int(std::thread::hardware_concurrency());
    cp.no_perf = true;
    l.ctx.reset(llama_init_from_model(l.model.get(), cp));
    if (!l.ctx) fail("%s: llama.cpp could not create a context of %d tokens", path.c_str(), o.n_ctx);
    return l;
}

std::vector<std::vector<llama_token>> make_windows(const llama_vocab * vocab, const std::string & text, const EvalOptions & o) {
    auto out = text_windows(vocab, text, o.n_ctx, o.max_chunks);
    if (out.empty()) fail("%s: not enough text to evaluate (need at least 2 tokens)", o.data.c_str());
    return out;
}

// Decodes one window with every position an output; calls fn(position, logits).
template <typename F>
void decode_window(const Loaded & l, const std::vector<llama_token> & win, F fn) {
    llama_memory_clear(llama_get_memory(l.ctx.get()), true);
    LlamaBatch batch(int32_t(win.size()));
    batch_add_outputs(batch.b, win, 0, win.size(), 0);
    const int rc = llama_decode(l.ctx.get(), batch.b);
    if (rc != 0) fail("llama_decode failed (%d)", rc);
    for (size_t i = 0; i + 1 < win.size(); i++) fn(i, llama_get_logits_ith(l.ctx.get(), int32_t(i)));
}

std::vector<llama_token> flatten(const std::vector<std::vector<llama_token>> & w) {
    std::vector<llama_token> f;
    for (const auto & x : w) f.insert(f.end(), x.begin(), x.end());
    return f;
}

EvalRow finish_row(const std::string & name, uint64_t size, double nll_sum, std::vector<double> & kls, uint64_t agree,
                   double seconds, uint64_t decoded) {
    EvalRow r;
    r.model     = name;
    r.file_size = size;
    r.n_scored  = kls.size();
    r.ppl       = std::exp(nll_sum / double(kls.size()));
    double s    = 0;
    for (double k : kls) s += k;
    r.kl_mean = s / double(kls.size());
    const size_t p99 = std::min(kls.size() - 1, size_t(std::ceil(0.99 * double(kls.size()))) - 1);
    std::nth_element(kls.begin(), kls.begin() + long(p99), kls.end());
    r.kl_p99       = kls[p99];
    r.top1         = double(agree) / double(kls.size());
    r.tokens_per_s = seconds > 0 ? double(decoded) / seconds : 0;
    return r;
}

}  // namespace

std::vector<EvalRow> run_eval(const EvalOptions & o) {
    if (o.n_ctx < 8) fail("-c/--ctx-size must be at least 8");
    std::ifstream in(o.data, std::ios::binary);
    if (!in) fail("%s: cannot open the held-out text", o.data.c_str());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail("%s: the held-out text is empty", o.data.c_str());
    if (o.base.empty() && (o.base_logits.empty() || file_size(o.base_logits) == 0)) {
        fail("give -m BASE, or --base-logits FILE from an earlier run");
    }
    llama_backend_init();

    std::vector<EvalRow> rows;
    const std::string    logits_path = !o.base_logits.empty() ? o.base_logits : "";
    const bool           reuse = !logits_path.empty() && file_size(logits_path) > 0;
    std::vector<std::vector<llama_token>> windows;
    LogitsHeader                           hdr{};
    if (o.pruned.empty() && o.base.empty()) {
        fail("nothing to evaluate: give --pruned MODEL (and -m BASE or --base-logits FILE)");
    }
    std::vector<float>                     lp, lp2;

    // ---- base: compute and store its log-probabilities, or read them back ----
    std::string tmp_logits;
    if (!reuse) {
        const Loaded base = load(o.base, o);
        windows           = make_windows(llama_model_get_vocab(base.model.get()), text, o);
        std::memcpy(hdr.magic, k_magic, 8);
        hdr.n_vocab        = uint32_t(llama_vocab_n_tokens(llama_model_get_vocab(base.model.get())));
        hdr.n_ctx          = uint32_t(o.n_ctx);
        hdr.n_windows      = uint32_t(windows.size());
        const auto flat    = flatten(windows);
        hdr.n_tokens       = flat.size();
        hdr.base_file_size = file_size(o.base);
        std::strncpy(hdr.base_name, base_name(o.base).c_str(), sizeof(hdr.base_name) - 1);
        const std::string path = logits_path.empty() ? o.data + ".base-logits.tmp" : logits_path;
        AtomicFile        out(path);
        out.write(&hdr, sizeof(hdr));
        out.write(flat.data(), flat.size() * sizeof(llama_token));
        Progress progress("eval " + base_name(o.base), hdr.n_tokens, "tokens", o.progress);
        double   nll = 0, secs = 0;
        uint64_t done = 0;
        std::vector<double> kls;
        for (const auto & w : windows) {
            const auto t0 = std::chrono::steady_clock::now();
            decode_window(base, w, [&](size_t i, const float * logits) {
                log_softmax(logits, hdr.n_vocab, lp);
                out.write(lp.data(), lp.size() * sizeof(float));
                nll -= double(lp[size_t(w[i + 1])]);
                kls.push_back(0.0);
            });
            secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            done += w.size();
            progress.update(done);
        }
        progress.finish();
        out.commit();
        rows.push_back(finish_row(base_name(o.base), hdr.base_file_size, nll, kls, kls.size(), secs, done));
        if (logits_path.empty()) tmp_logits = path;
    }
    const std::string lpath = tmp_logits.empty() ? logits_path : tmp_logits;
    struct TmpRemover {
        std::string p;
        ~TmpRemover() { if (!p.empty()) std::remove(p.c_str()); }
    } remover{tmp_logits};

    std::ifstream lf(lpath, std::ios::binary);
    if (!lf.read(reinterpret_cast<char *>(&hdr), sizeof(hdr)) || std::memcmp(hdr.magic, k_magic, 8) != 0) {
        fail("%s: not a reap base-logits file", lpath.c_str());
    }
    if (hdr.n_ctx != uint32_t(o.n_ctx)) {
        fail("%s: made with -c %u, this run uses -c %d", lpath.c_str(), hdr.n_ctx, o.n_ctx);
    }
    std::vector<llama_token> stored(hdr.n_tokens);
    if (hdr.n_vocab == 0 || hdr.n_ctx < 2 || hdr.n_tokens == 0 || hdr.n_tokens > (uint64_t(1) << 34) ||
        !lf.read(reinterpret_cast<char *>(stored.data()), std::streamsize(stored.size() * sizeof(llama_token)))) {
        fail("%s: truncated or corrupt base-logits file", lpath.c_str());
    }
    // Every window holds n_ctx tokens but the last, so the stored stream gives the windows back.
    windows.clear();
    uint64_t n_pred = 0;
    for (size_t i = 0; i < stored.size(); i += hdr.n_ctx) {
        windows.emplace_back(stored.begin() + long(i), stored.begin() + long(std::min(stored.size(), i + hdr.n_ctx)));
        n_pred += windows.back().size() - 1;
    }
    const uint64_t data_at = sizeof(hdr) + hdr.n_tokens * sizeof(llama_token);
    if (file_size(lpath) != data_at + n_pred * hdr.n_vocab * sizeof(float)) {
        fail("%s: truncated or corrupt base-logits file", lpath.c_str());
    }
    lp.resize(hdr.n_vocab);
    if (reuse) {
        // The base row from the stored log-probabilities alone: the base model is not loaded.
        double              nll = 0;
        std::vector<double> kls;
        for (const auto & w : windows) {
            for (size_t i = 0; i + 1 < w.size(); i++) {
                lf.read(reinterpret_cast<char *>(lp.data()), std::streamsize(lp.size() * sizeof(float)));
                nll -= double(lp[size_t(w[i + 1])]);
                kls.push_back(0.0);
            }
        }
        rows.push_back(finish_row(hdr.base_name, hdr.base_file_size, nll, kls, kls.size(), 0, 0));
    }

    for (const std::string & path : o.pruned) {
        const Loaded        m     = load(path, o);
        const llama_vocab * vocab = llama_model_get_vocab(m.model.get());
        if (uint32_t(llama_vocab_n_tokens(vocab)) != hdr.n_vocab) {
            fail("%s: vocabulary of %d tokens, the base logits have %u: not comparable", path.c_str(),
                 llama_vocab_n_tokens(vocab), hdr.n_vocab);
        }
        if (flatten(make_windows(vocab, text, o)) != stored) {
            fail("%s: the text tokenizes differently than for %s (different text, -c or vocabulary)", path.c_str(),
                 lpath.c_str());
        }
        lf.clear();
        lf.seekg(std::streamoff(data_at));
        Progress            progress("eval " + base_name(path), hdr.n_tokens, "tokens", o.progress);
        double              nll = 0, secs = 0;
        uint64_t            agree = 0, done = 0;
        std::vector<double> kls;
        for (const auto & w : windows) {
            const auto t0 = std::chrono::steady_clock::now();
            std::vector<std::vector<float>> rows_lp;
            decode_window(m, w, [&](size_t, const float * logits) {
                log_softmax(logits, hdr.n_vocab, lp2);
                rows_lp.push_back(lp2);
            });
            secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (size_t i = 0; i + 1 < w.size(); i++) {
                if (!lf.read(reinterpret_cast<char *>(lp.data()), std::streamsize(lp.size() * sizeof(float)))) {
                    fail("%s: truncated base-logits file", lpath.c_str());
                }
                const auto c = compare_token(lp.data(), rows_lp[i].data(), hdr.n_vocab, w[i + 1]);
                nll += c.nll;
                kls.push_back(c.kl);
                agree += c.top1_agrees ? 1 : 0;
            }
            done += w.size();
            progress.update(done);
        }
        progress.finish();
        rows.push_back(finish_row(base_name(path), file_size(path), nll, kls, agree, secs, done));
    }
    return rows;
}

std::string eval_table(const std::vector<EvalRow> & rows) {
    std::string s = strfmt("%-36s %11s %10s %10s %10s %8s %9s\n", "model", "size", "PPL", "KL mean", "KL p99", "top-1",
                           "tokens/s");
    for (const auto & r : rows) {
        s += strfmt("%-36s %11s %10.4f %10.6f %10.6f %8.4f %9.1f\n", r.model.c_str(), human_bytes(r.file_size).c_str(),
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, r.tokens_per_s);
    }
    return s;
}

nlohmann::json eval_json(const std::vector<EvalRow> & rows) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto & r : rows) {
        a.push_back({{"model", r.model}, {"file_size", r.file_size}, {"ppl", r.ppl}, {"kl_mean", r.kl_mean},
                     {"kl_p99", r.kl_p99}, {"top1_agreement", r.top1}, {"tokens_per_s", r.tokens_per_s},
                     {"tokens_scored", r.n_scored}});
    }
    return a;
}

std::string eval_csv(const std::vector<EvalRow> & rows) {
    std::string s = "model,file_size,ppl,kl_mean,kl_p99,top1_agreement,tokens_per_s,tokens_scored\n";
    for (const auto & r : rows) {
        s += strfmt("\"%s\",%llu,%.6f,%.8f,%.8f,%.6f,%.2f,%llu\n", r.model.c_str(), (unsigned long long) r.file_size,
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, r.tokens_per_s, (unsigned long long) r.n_scored);
    }
    return s;
}

}  // namespace reap
