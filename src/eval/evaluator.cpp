#include "eval/evaluator.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "eval/base_logits.h"
#include "eval/eval_inputs.h"
#include "eval/task_scoring.h"
#include "gguf/content_id.h"
#include "llama/context_size.h"
#include "llama/llama_runtime.h"

#include "llama.h"

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
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

// Runs the base model over domain `d`, streams its log-probabilities to `path`, returns the base row.
EvalRow write_base_logits(const LlamaRuntime & base, const EvalOptions & o, const EvalDomain & d,
                          const std::string & text, const std::string & path) {
    const ModelFiles files   = model_files(o.base);
    const Windows    windows = eval_windows(base.vocab(), text, o, d);
    const uint32_t   n_vocab = uint32_t(llama_vocab_n_tokens(base.vocab()));
    const uint32_t   first   = first_scored_position(o.convention, uint32_t(o.n_ctx));
    BaseLogitsWriter out(path, n_vocab, uint32_t(o.n_ctx), first, windows,
                         {base_name(files.first()), files.size, model_content_id(GgufFile::open(o.base))});
    if (scored_positions(out.header().n_tokens, uint32_t(o.n_ctx), first) == 0) {
        fail("%s: too little text to score with --ppl-convention %s at -c %d", d.file.c_str(),
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

void check_vocabulary(const LlamaRuntime & m, const std::string & path, uint32_t n_vocab, const char * base_what) {
    if (uint32_t(llama_vocab_n_tokens(m.vocab())) != n_vocab) {
        fail("%s: vocabulary of %d tokens, %s %u: not comparable", path.c_str(), llama_vocab_n_tokens(m.vocab()),
             base_what, n_vocab);
    }
}

// Runs `m` (the model `path`) over the stored windows and compares every scored position with the
// base, one position at a time: memory holds one window's logits (llama.cpp's) and one row of each side.
EvalRow compare_model(const LlamaRuntime & m, const std::string & path, const EvalOptions & o, const EvalDomain & d,
                      const std::string & text, BaseLogitsReader & logits) {
    const uint32_t n_vocab = logits.header().n_vocab;
    check_vocabulary(m, path, n_vocab, "the base logits have");
    Windows                  mine = eval_windows(m.vocab(), text, o, d);
    std::vector<llama_token> flat;
    for (const auto & w : mine)
        flat.insert(flat.end(), w.begin(), w.end());
    if (flat != logits.tokens()) {
        // The same windows, fewer or more of them: the file was made with another --chunks.
        const auto & theirs = logits.windows();
        if (mine.size() != theirs.size() &&
            std::equal(mine.begin(), mine.begin() + long(std::min(mine.size(), theirs.size())), theirs.begin())) {
            fail("%s: holds %zu windows of the text, this run takes %zu (another --chunks)", logits.path().c_str(),
                 theirs.size(), mine.size());
        }
        fail("%s: the text tokenizes differently than for %s (different text or vocabulary)", path.c_str(),
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

// Removes the temporary logits files when the run ends, however it ends.
struct RemoveOnExit {
    std::vector<std::string> paths;
    ~RemoveOnExit() {
        for (const auto & p : paths)
            std::remove(p.c_str());
    }
};

// Where domain `i`'s base logits go when no --base-logits is given: the system's temporary folder
// (TMPDIR), never beside the user's files.
std::string temporary_logits_path(size_t i) {
    return (std::filesystem::temp_directory_path() /
            ("reap-base-logits-" + std::to_string(::getpid()) + "-" + std::to_string(i) + ".bin"))
        .string();
}

// An existing logits file records the base it was made from; -m must be that model, by
// content: another model may have the same file name and size.
void check_logits_base(const BaseLogitsReader & logits, const std::string & base) {
    const GgufFile f = GgufFile::open(base);
    const auto &   h = logits.header();
    if (model_content_id(f) != h.base_content_id) {
        fail(
            "%s: made from the base %s (%llu bytes), but -m %s (%llu bytes) is another model (its content differs); "
            "give that base, or another --base-logits file",
            logits.path().c_str(), h.base_name, (unsigned long long) h.base_file_size, base.c_str(),
            (unsigned long long) f.file_size());
    }
}

// Scores the task files on the base (the first row) and on each pruned model.
void add_task_scores(const EvalOptions & o, const std::vector<TaskSet> & sets, std::vector<EvalRow> & rows) {
    TaskRunOptions t;
    static_cast<LlamaFlags &>(t) = o;
    t.n_ctx                      = o.n_ctx;
    t.n_batch                    = o.n_batch;
    t.n_ubatch                   = o.n_ubatch;
    t.progress                   = o.progress;
    rows.front().tasks           = score_task_sets(o.base, t, sets);
    for (size_t i = 0; i < o.pruned.size(); i++)
        rows[i + 1].tasks = score_task_sets(o.pruned[i], t, sets);
}

// A model's row: the first domain's numbers at the top, every domain's in `domains`.
EvalRow model_row(const std::vector<EvalRow> & per_domain, const std::vector<EvalRow> & base_per_domain,
                  const std::vector<EvalDomain> & domains) {
    EvalRow r = per_domain.front();
    for (size_t i = 0; i < domains.size(); i++)
        r.domains.push_back(domain_score(domains[i].name, per_domain[i], base_per_domain[i].ppl));
    return r;
}

}  // namespace

void check_eval_options(const EvalOptions & o) {
    if (o.n_ctx != k_ctx_size_not_given && o.n_ctx != 0 && o.n_ctx < 8) {
        fail_usage("-c/--ctx-size must be at least 8 (0: the model's trained context)");
    }
    if (o.max_chunks == 0 || o.max_chunks < -1) {
        fail_usage("--chunks %d: give a number of windows, at least 1 (-1: all)", o.max_chunks);
    }
    if (o.domains.empty()) fail_usage("give the held-out text: --data [NAME=]FILE");
    const bool all_stored =
        std::all_of(o.domains.begin(), o.domains.end(), [](const EvalDomain & d) { return !d.base_logits.empty(); });
    if (o.base.empty() && !all_stored) fail_usage("give -m BASE, or --base-logits FILE from an earlier run");
    if (o.base.empty() && !o.generation.prompts.empty()) {
        fail_usage("--prompts needs -m BASE: the base model's continuations are what the others are compared with");
    }
    if (o.pruned.empty() && o.base.empty()) {
        fail_usage("nothing to evaluate: give --pruned MODEL (and -m BASE or --base-logits FILE)");
    }
    check_prompt_budget_option(o.generation, o.n_ctx);  // -c given; from the model: check_eval_inputs
}

std::vector<EvalRow> run_eval(const EvalOptions & given) {
    // Every input read and checked before any model runs: a bad one fails in seconds.
    return run_eval(check_eval_inputs(given));
}

std::vector<EvalRow> run_eval(const EvalInputs & in) {
    const EvalOptions &       o          = in.options;
    const size_t              n_domains  = o.domains.size();
    const GenerationOptions & gen        = o.generation;
    const bool                generate   = !gen.prompts.empty();
    const bool                all_reused = std::all_of(in.reuse.begin(), in.reuse.end(), [](bool r) { return r; });
    llama_backend_init();
    // Ctrl-C stops before the next window; the temporaries below are removed as the stack
    // unwinds, and reap exits 130.
    StopSignalGuard signals;
    create_base_logits_folders(o.domains);

    // Stored logits first: a file made from another base is refused before any model runs.
    const uint32_t                                 first = first_scored_position(o.convention, uint32_t(o.n_ctx));
    std::vector<std::unique_ptr<BaseLogitsReader>> logits(n_domains);
    std::vector<EvalRow>                           base_rows(n_domains);
    for (size_t i = 0; i < n_domains; i++) {
        if (!in.reuse[i]) continue;
        logits[i] = std::make_unique<BaseLogitsReader>(o.domains[i].base_logits, o.n_ctx, first);
        if (!o.base.empty()) {
            check_logits_base(*logits[i], o.base);
        }
        base_rows[i] = base_row_from_file(*logits[i], o);
    }
    // The base model, loaded once: the domains without stored logits, then the prompts.
    RemoveOnExit                   temporaries;
    const std::vector<Prompt> &    prompts = in.prompts;
    std::vector<Continuation>      base_continuations;
    std::optional<GenerationScore> base_generation;
    int32_t                        base_n_vocab = 0;
    if (!all_reused || generate) {
        const LlamaRuntime base = load_model(o.base, o);
        base_n_vocab            = llama_vocab_n_tokens(base.vocab());
        for (size_t i = 0; i < n_domains; i++) {
            if (in.reuse[i]) continue;
            std::string path = o.domains[i].base_logits;
            if (path.empty()) {
                path = temporary_logits_path(i);
                temporaries.paths.push_back(path);
            }
            base_rows[i] = write_base_logits(base, o, o.domains[i], in.texts[i], path);
            logits[i]    = std::make_unique<BaseLogitsReader>(path, o.n_ctx, first);
        }
        if (generate) {
            base_continuations = greedy_continuations(base, prompts, gen.n_tokens, base_name(o.base), o.progress);
            base_generation = compare_continuations(base.vocab(), prompts, base_continuations, base_continuations, gen);
        }
    }
    std::vector<EvalRow> rows = {model_row(base_rows, base_rows, o.domains)};
    rows.front().generation   = base_generation;
    for (const std::string & path : o.pruned) {
        const LlamaRuntime   m = load_model(path, o);
        std::vector<EvalRow> per_domain;
        for (size_t i = 0; i < n_domains; i++)
            per_domain.push_back(compare_model(m, path, o, o.domains[i], in.texts[i], *logits[i]));
        rows.push_back(model_row(per_domain, base_rows, o.domains));
        if (generate) {
            check_vocabulary(m, path, uint32_t(base_n_vocab), "the base has");
            const auto mine        = greedy_continuations(m, prompts, gen.n_tokens, base_name(path), o.progress);
            rows.back().generation = compare_continuations(m.vocab(), prompts, base_continuations, mine, gen);
        }
    }
    if (!in.task_sets.empty()) add_task_scores(o, in.task_sets, rows);
    return rows;
}

}  // namespace reap
