#include "eval/evaluator.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "eval/base_logits.h"
#include "llama/llama_runtime.h"

#include "llama.h"

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace reap {

namespace {

using Windows = std::vector<std::vector<llama_token>>;

// One window per call, every position an output.
LlamaRuntime load_model(const std::string & path, const EvalOptions & o) {
    if (o.n_batch > 0 && o.n_batch < o.n_ctx) {
        fail("-b %d: eval decodes one window of -c %d tokens per call, so -b must be at least -c", o.n_batch, o.n_ctx);
    }
    LlamaRuntimeOptions r;
    static_cast<LlamaFlags &>(r) = o;
    r.n_ctx                      = uint32_t(o.n_ctx);
    r.n_batch                    = uint32_t(o.n_batch > 0 ? o.n_batch : o.n_ctx);
    r.n_ubatch                   = std::min(r.n_batch, uint32_t(o.n_ubatch > 0 ? o.n_ubatch : o.n_ctx));
    return open_llama(path, r);
}

std::string read_heldout_text(const EvalOptions & o) {
    std::ifstream in(o.data, std::ios::binary);
    if (!in) fail("%s: cannot open the held-out text", o.data.c_str());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail("%s: the held-out text is empty", o.data.c_str());
    return text;
}

Windows make_windows(const llama_vocab * vocab, const std::string & text, const EvalOptions & o) {
    auto out = text_windows(vocab, text, o.n_ctx, o.max_chunks);
    if (out.empty()) fail("%s: not enough text to evaluate (need at least 2 tokens)", o.data.c_str());
    return out;
}

// Decodes one window with every position an output; returns the seconds llama.cpp spent (the
// logits are then read with llama_get_logits_ith, outside the clock).
double decode_window(const LlamaRuntime & m, const std::vector<llama_token> & win) {
    stop_point("evaluating (temporary files removed, no output written)");
    const auto t0 = std::chrono::steady_clock::now();
    llama_memory_clear(m.memory(), true);
    LlamaBatch batch(int32_t(win.size()));
    batch_add_outputs(batch.b, win, 0, win.size(), 0);
    const int rc = llama_decode(m.ctx.get(), batch.b);
    if (rc != 0) fail("llama_decode failed (%d)", rc);
    llama_synchronize(m.ctx.get());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs the base model, streams its log-probabilities to `path`, returns the base row.
EvalRow write_base_logits(const EvalOptions & o, const std::string & text, const std::string & path) {
    const ModelFiles   files   = model_files(o.base);
    const LlamaRuntime base    = load_model(o.base, o);
    const Windows      windows = make_windows(base.vocab(), text, o);
    const uint32_t     n_vocab = uint32_t(llama_vocab_n_tokens(base.vocab()));
    const uint32_t     first   = first_scored_position(o.convention, uint32_t(o.n_ctx));
    BaseLogitsWriter   out(path, n_vocab, uint32_t(o.n_ctx), first, windows, base_name(files.first()), files.size);
    if (scored_positions(out.header().n_tokens, uint32_t(o.n_ctx), first) == 0) {
        fail("%s: too little text to score with --ppl-convention %s at -c %d", o.data.c_str(),
             ppl_convention_name(o.convention), o.n_ctx);
    }
    Progress           progress("eval " + base_name(o.base), out.header().n_tokens, "tokens", o.progress);
    ScoreSum           score;
    std::vector<float> lp;
    double             secs = 0;
    uint64_t           done = 0;
    for (const auto & w : windows) {
        secs += decode_window(base, w);
        for (size_t i = first; i + 1 < w.size(); i++) {
            log_softmax(llama_get_logits_ith(base.ctx.get(), int32_t(i)), n_vocab, lp);
            out.write_row(lp, w[i + 1]);
            score.add({0.0, -double(lp[size_t(w[i + 1])]), true});
        }
        done += w.size();
        progress.update(done);
    }
    progress.finish();
    out.commit();
    return score.row(o.base, out.header().base_file_size, secs, done);
}

// The base row from the stored rows alone: the base model is not loaded, so no speed. Each row
// keeps the exact log-probability of the next token: the same PPL as when it was written.
EvalRow base_row_from_file(BaseLogitsReader & logits, const EvalOptions & o) {
    ScoreSum score;
    BaseRow  row;
    logits.rewind();
    for (const auto & w : logits.windows()) {
        for (size_t i = logits.header().first_scored; i + 1 < w.size(); i++) {
            logits.read_row(row, w[i + 1]);
            score.add({0.0, -double(row.next_logprob), true});
        }
    }
    return score.row(o.base.empty() ? logits.header().base_name : o.base, logits.header().base_file_size, 0, 0);
}

// Runs `path` over the stored windows and compares every scored position with the base, one
// position at a time: memory holds one window's logits (llama.cpp's) and one row of each side.
EvalRow compare_model(const std::string & path, const EvalOptions & o, const std::string & text,
                      BaseLogitsReader & logits) {
    const LlamaRuntime m       = load_model(path, o);
    const uint32_t     n_vocab = logits.header().n_vocab;
    if (uint32_t(llama_vocab_n_tokens(m.vocab())) != n_vocab) {
        fail("%s: vocabulary of %d tokens, the base logits have %u: not comparable", path.c_str(),
             llama_vocab_n_tokens(m.vocab()), n_vocab);
    }
    Windows                  mine = make_windows(m.vocab(), text, o);
    std::vector<llama_token> flat;
    for (const auto & w : mine)
        flat.insert(flat.end(), w.begin(), w.end());
    if (flat != logits.tokens()) {
        fail("%s: the text tokenizes differently than for %s (different text, -c or vocabulary)", path.c_str(),
             logits.path().c_str());
    }
    logits.rewind();
    Progress           progress("eval " + base_name(path), logits.header().n_tokens, "tokens", o.progress);
    ScoreSum           score;
    BaseRow            base;
    std::vector<float> model_lp;
    double             secs = 0;
    uint64_t           done = 0;
    for (const auto & w : logits.windows()) {
        secs += decode_window(m, w);
        for (size_t i = logits.header().first_scored; i + 1 < w.size(); i++) {
            log_softmax(llama_get_logits_ith(m.ctx.get(), int32_t(i)), n_vocab, model_lp);
            logits.read_row(base, w[i + 1]);
            score.add(compare_token(base.logprobs.data(), model_lp.data(), n_vocab, w[i + 1]));
        }
        done += w.size();
        progress.update(done);
    }
    progress.finish();
    return score.row(path, model_files(path).size, secs, done);
}

// Removes a temporary logits file when the run ends, however it ends.
struct RemoveOnExit {
    std::string path;
    ~RemoveOnExit() {
        if (!path.empty()) std::remove(path.c_str());
    }
};

// Where the base logits go when no --base-logits is given: the system's temporary folder
// (TMPDIR), never beside the user's files.
std::string temporary_logits_path() {
    return (std::filesystem::temp_directory_path() / ("reap-base-logits-" + std::to_string(::getpid()) + ".bin"))
        .string();
}

// Refuses, before any work, an output (the table, a base-logits file to write) that is one of
// the inputs: the models' files, the held-out text, a base-logits file to read.
void refuse_outputs_over_inputs(const EvalOptions & o, bool reuse) {
    std::vector<std::string> inputs = {o.data};
    for (const std::string & m : o.pruned) {
        const auto parts = model_files(m).parts;
        inputs.insert(inputs.end(), parts.begin(), parts.end());
    }
    if (!o.base.empty()) {
        const auto parts = model_files(o.base).parts;
        inputs.insert(inputs.end(), parts.begin(), parts.end());
    }
    if (!reuse && !o.base_logits.empty()) {
        refuse_output_over_inputs(o.base_logits, inputs);
    }
    if (!o.base_logits.empty()) {
        inputs.push_back(o.base_logits);  // read, or written by this run: either way not the table
    }
    if (!o.output.empty()) {
        refuse_output_over_inputs(o.output, inputs);
    }
}

// An existing logits file records the base it was made from; -m must be that model.
void check_logits_base(const BaseLogitsReader & logits, const std::string & base) {
    const ModelFiles  files = model_files(base);
    const std::string name  = base_name(files.first());
    const auto &      h     = logits.header();
    if (name != h.base_name || files.size != h.base_file_size) {
        fail(
            "%s: made from the base %s (%llu bytes), but -m is %s (%llu bytes); give that base, or another "
            "--base-logits file",
            logits.path().c_str(), h.base_name, (unsigned long long) h.base_file_size, name.c_str(),
            (unsigned long long) files.size);
    }
}

}  // namespace

std::vector<EvalRow> run_eval(const EvalOptions & o) {
    if (o.n_ctx < 8) fail("-c/--ctx-size must be at least 8");
    const std::string text  = read_heldout_text(o);
    const bool        reuse = !o.base_logits.empty() && file_size(o.base_logits) > 0;
    if (o.base.empty() && !reuse) {
        fail("give -m BASE, or --base-logits FILE from an earlier run");
    }
    if (o.pruned.empty() && o.base.empty()) {
        fail("nothing to evaluate: give --pruned MODEL (and -m BASE or --base-logits FILE)");
    }
    refuse_outputs_over_inputs(o, reuse);
    llama_backend_init();
    // Ctrl-C stops before the next window; the temporaries below are removed as the stack
    // unwinds, and reap exits 130.
    StopSignalGuard signals;

    std::vector<EvalRow> rows;
    RemoveOnExit         temporary;
    std::string          logits_path = o.base_logits;
    if (!reuse) {
        if (logits_path.empty()) {
            logits_path = temporary.path = temporary_logits_path();
        }
        rows.push_back(write_base_logits(o, text, logits_path));
    }
    BaseLogitsReader logits(logits_path, o.n_ctx, first_scored_position(o.convention, uint32_t(o.n_ctx)));
    if (reuse) {
        if (!o.base.empty()) {
            check_logits_base(logits, o.base);
        }
        rows.push_back(base_row_from_file(logits, o));
    }
    for (const std::string & path : o.pruned) {
        rows.push_back(compare_model(path, o, text, logits));
    }
    return rows;
}

}  // namespace reap
