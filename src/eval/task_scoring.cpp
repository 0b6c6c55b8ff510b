#include "eval/task_scoring.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "llama/llama_runtime.h"

#include <algorithm>
#include <cmath>

namespace reap {

namespace {

// A task's token sequences (one per ending or choice), decoded together in one batch.
struct Prepared {
    std::vector<std::vector<llama_token>> seqs;
    size_t                                common       = 0;       // tokens all sequences share
    size_t                                required     = 0;       // tokens the task adds to a batch
    size_t                                first_output = 0;       // its first logits row in the batch
    size_t                                base[2]      = {0, 0};  // winogrande: tokens of "first choice"
};

// A log-probability to read from one logits row: of `token`, by a plain softmax (the first token
// after the shared prefix, as llama-perplexity's softmax() computes it) or a log-softmax.
struct Query {
    size_t      output;
    llama_token token;
    bool        softmax;
    float *     dest;
};

Prepared prepare(std::vector<std::vector<llama_token>> seqs, const std::string & where) {
    Prepared p;
    p.seqs         = std::move(seqs);
    size_t min_len = p.seqs.front().size();
    for (const auto & s : p.seqs)
        min_len = std::min(min_len, s.size());
    while (p.common < min_len) {
        bool same = true;
        for (const auto & s : p.seqs)
            same = same && s[p.common] == p.seqs[0][p.common];
        if (!same) break;
        p.common++;
    }
    // llama-perplexity reads outside its buffers in these cases; reap refuses them.
    if (p.common == 0)
        fail("%s: the choices share no first token (the model adds no BOS): cannot score", where.c_str());
    if (p.common == min_len) fail("%s: one choice adds no token to the others: cannot score", where.c_str());
    p.required = p.common;
    for (const auto & s : p.seqs)
        p.required += s.size() - p.common;
    return p;
}

std::vector<llama_token> tok(const llama_vocab * vocab, const std::string & text) {
    return tokenize(vocab, text, true, false);
}

// Every task of `set` as token sequences, in order; fails on one that cannot be scored.
std::vector<Prepared> prepare_set(const llama_vocab * vocab, const TaskSet & set) {
    std::vector<Prepared> tasks;
    for (const WinograndeTask & t : set.winogrande) {
        Prepared p = prepare(
            {tok(vocab, t.first + t.choices[0] + t.second), tok(vocab, t.first + t.choices[1] + t.second)}, t.where);
        p.base[0] = tok(vocab, t.first + t.choices[0]).size();
        p.base[1] = tok(vocab, t.first + t.choices[1]).size();
        tasks.push_back(std::move(p));
    }
    for (const ChoiceTask & t : set.choice) {
        std::vector<std::vector<llama_token>> seqs;
        for (const std::string & e : t.endings)
            seqs.push_back(tok(vocab, t.context + " " + e));
        tasks.push_back(prepare(std::move(seqs), t.where));
    }
    return tasks;
}

std::vector<std::string> where_of(const TaskSet & set) {
    std::vector<std::string> where;
    for (const WinograndeTask & t : set.winogrande)
        where.push_back(t.where);
    for (const ChoiceTask & t : set.choice)
        where.push_back(t.where);
    return where;
}

// The context the tasks are scored in: llama-perplexity's -np slots of -c tokens, which llama.cpp
// pads to a multiple of 256 (llama_context's constructor); a task must fit it whole.
uint32_t task_context(const std::vector<TaskSet> & sets, int n_ctx) {
    const uint32_t n = uint32_t(task_parallel(sets) * n_ctx);
    return (n + 255) / 256 * 256;
}

// Owns a llama_batch whose tokens may belong to several sequences.
struct MultiSeqBatch {
    llama_batch b;
    MultiSeqBatch(int32_t n_tokens, int32_t n_seq) : b(llama_batch_init(n_tokens, 0, n_seq)) {}
    ~MultiSeqBatch() { llama_batch_free(b); }
    MultiSeqBatch(const MultiSeqBatch &)             = delete;
    MultiSeqBatch & operator=(const MultiSeqBatch &) = delete;
    void            add(llama_token t, size_t pos, llama_seq_id seq0, int n_seq, bool output) {
                   const int k   = b.n_tokens++;
                   b.token[k]    = t;
                   b.pos[k]      = llama_pos(pos);
                   b.n_seq_id[k] = n_seq;
                   for (int s = 0; s < n_seq; s++)
            b.seq_id[k][s] = seq0 + s;
        b.logits[k] = output;
    }
};

// Packs tasks from `i0` into `batch` as llama-perplexity does (the shared prefix once for all
// of a task's sequences with its last row an output, then each sequence's own tokens, the last
// one an output only when `last_is_output`); returns the end of the packed range.
size_t pack(std::vector<Prepared> & tasks, size_t i0, int n_ctx, int max_seq, bool last_is_output,
            MultiSeqBatch & batch, const std::vector<std::string> & where) {
    batch.b.n_tokens = 0;
    size_t i1 = i0, n_cur = 0, outputs = 0;
    int    s0 = 0;
    while (n_cur + tasks[i1].required <= size_t(n_ctx)) {
        Prepared & t     = tasks[i1];
        const int  n_ans = int(t.seqs.size());
        if (s0 + n_ans > max_seq) {
            if (s0 == 0) fail("%s: %d choices, more than %d sequences", where[i1].c_str(), n_ans, max_seq);
            break;
        }
        for (size_t i = 0; i < t.common; i++)
            batch.add(t.seqs[0][i], i, s0, n_ans, i + 1 == t.common);
        t.first_output = outputs;
        outputs++;
        for (int s = 0; s < n_ans; s++) {
            const auto & seq = t.seqs[size_t(s)];
            for (size_t i = t.common; i < seq.size(); i++) {
                const bool out = last_is_output || i + 1 < seq.size();
                batch.add(seq[i], i, s0 + s, 1, out);
                outputs += out;
            }
        }
        s0 += n_ans;
        n_cur += t.required;
        if (++i1 == tasks.size()) break;
    }
    if (i1 == i0) {
        fail("%s: the task needs %zu tokens, more than the context of %d: raise -c", where[i0].c_str(),
             tasks[i0].required, n_ctx);
    }
    return i1;
}

// Row statistics as llama-perplexity computes them: the max, the float sum of expf (its
// log-softmax) and the double sum (its softmax).
struct RowStats {
    float  max;
    float  sum_f;
    double sum_d;
};

RowStats row_stats(const float * row, int n_vocab) {
    RowStats r{row[0], 0.f, 0.0};
    for (int j = 1; j < n_vocab; j++)
        r.max = std::max(r.max, row[j]);
    for (int j = 0; j < n_vocab; j++) {
        const float e = expf(row[j] - r.max);
        r.sum_f += e;
        r.sum_d += e;
    }
    return r;
}

// Decodes the batch in calls of n_batch tokens, answering each query from its row.
void decode_and_answer(llama_context * ctx, MultiSeqBatch & batch, int n_batch, std::vector<Query> & queries) {
    std::stable_sort(queries.begin(), queries.end(),
                     [](const Query & a, const Query & b) { return a.output < b.output; });
    llama_memory_clear(llama_get_memory(ctx), true);
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    size_t    q = 0, first_row = 0;
    for (int i = 0; i < batch.b.n_tokens; i += n_batch) {
        const int   n    = std::min(n_batch, batch.b.n_tokens - i);
        llama_batch view = {n,
                            batch.b.token + i,
                            nullptr,
                            batch.b.pos + i,
                            batch.b.n_seq_id + i,
                            batch.b.seq_id + i,
                            batch.b.logits + i};
        const int   rc   = llama_decode(ctx, view);
        if (rc != 0) fail("llama_decode failed (%d)", rc);
        size_t rows = 0;
        for (int k = 0; k < n; k++)
            rows += view.logits[k] != 0;
        const float * logits = llama_get_logits(ctx);
        while (q < queries.size() && queries[q].output < first_row + rows) {
            const float *  row = logits + (queries[q].output - first_row) * size_t(n_vocab);
            const RowStats st  = row_stats(row, n_vocab);
            for (const size_t at = queries[q].output; q < queries.size() && queries[q].output == at; q++) {
                const float x    = row[queries[q].token];
                *queries[q].dest = queries[q].softmax ? std::log(float(double(expf(x - st.max)) / st.sum_d))
                                                      : x - st.max - std::log(st.sum_f);
            }
        }
        first_row += rows;
    }
}

struct Scorer {
    llama_context *     ctx;
    const llama_vocab * vocab;
    int                 n_batch;
    bool                show_progress;
    std::string         model;

    // Hellaswag and multiple-choice.
    TaskScore choice(const TaskSet & set) const {
        std::vector<Prepared>          tasks     = prepare_set(vocab, set);
        const std::vector<std::string> where     = where_of(set);
        const bool                     hellaswag = set.format == TaskFormat::hellaswag;
        const int                      max_seq   = std::min(4 * 32, int(llama_n_seq_max(ctx)));
        const int                      n_ctx     = int(llama_n_ctx(ctx));
        MultiSeqBatch                  batch(n_ctx, max_seq);
        TaskScore                      score;
        score.format = set.format;
        Progress progress(std::string(task_format_name(set.format)) + " " + base_name(model), tasks.size(), "tasks",
                          show_progress);
        for (size_t i0 = 0; i0 < tasks.size();) {
            const size_t                    i1 = pack(tasks, i0, n_ctx, max_seq, false, batch, where);
            std::vector<std::vector<float>> lp(i1 - i0);  // per task: per ending, its first, then the rest
            std::vector<Query>              queries;
            for (size_t i = i0; i < i1; i++) {
                const Prepared & t = tasks[i];
                auto &           v = lp[i - i0];
                size_t           n = 0;
                for (const auto & s : t.seqs)
                    n += s.size() - t.common;
                v.resize(n);
                size_t li = 1, at = 0;
                for (const auto & s : t.seqs) {
                    queries.push_back({t.first_output, s[t.common], true, &v[at++]});
                    for (size_t j = t.common; j + 1 < s.size(); j++)
                        queries.push_back({t.first_output + li++, s[j + 1], false, &v[at++]});
                }
            }
            decode_and_answer(ctx, batch, n_batch, queries);
            for (size_t i = i0; i < i1; i++) {
                const Prepared & t  = tasks[i];
                const auto &     v  = lp[i - i0];
                size_t           at = 0, best = 0;
                double           best_d = 0;
                float            best_f = 0;
                for (size_t s = 0; s < t.seqs.size(); s++) {
                    const size_t count = t.seqs[s].size() - t.common;
                    double       sum_d = 0;
                    float        sum_f = 0;
                    for (size_t k = 0; k < count; k++, at++) {
                        sum_d += v[at];
                        sum_f += v[at];
                    }
                    const double mean_d = sum_d / double(count);
                    const float  mean_f = sum_f / float(count);
                    if (s == 0 || (hellaswag ? mean_d > best_d : mean_f > best_f)) {
                        best   = s;
                        best_d = mean_d;
                        best_f = mean_f;
                    }
                }
                score.correct += set.choice[i].right[best];
                score.n++;
            }
            i0 = i1;
            progress.update(i0);
        }
        progress.finish();
        return score;
    }

    TaskScore winogrande(const TaskSet & set) const {
        std::vector<Prepared>          tasks   = prepare_set(vocab, set);
        const std::vector<std::string> where   = where_of(set);
        const int                      max_seq = std::min(2 * 128, int(llama_n_seq_max(ctx)));
        const int                      n_ctx   = int(llama_n_ctx(ctx));
        MultiSeqBatch                  batch(n_ctx, 2);
        TaskScore                      score;
        score.format = set.format;
        Progress progress("winogrande " + base_name(model), tasks.size(), "tasks", show_progress);
        for (size_t i0 = 0; i0 < tasks.size();) {
            const size_t                    i1 = pack(tasks, i0, n_ctx, max_seq, true, batch, where);
            std::vector<std::vector<float>> lp(2 * (i1 - i0));
            std::vector<Query>              queries;
            for (size_t i = i0; i < i1; i++) {
                const Prepared & t  = tasks[i];
                const size_t     n0 = t.seqs[0].size(), n1 = t.seqs[1].size(), c = t.common;
                const bool       skip = n0 - c > 3 && n1 - c > 3;  // score only what follows the choice
                for (int s = 0; s < 2; s++) {
                    const auto & seq  = t.seqs[size_t(s)];
                    const size_t nb   = skip ? t.base[s] : c;
                    const size_t last = seq.size() - nb > 1 ? 1 : 0;
                    // rows: seq 0's from 1, seq 1's after them; llama-perplexity's offset for seq 1 is
                    // one row early when the choice is scored (marked as a known quirk there): kept, for equal scores.
                    size_t li   = s == 0 ? nb - c : n0 - c + nb - c;
                    auto & dest = lp[2 * (i - i0) + size_t(s)];
                    dest.resize(seq.size() - 1 - last > nb - 1 ? seq.size() - 1 - last - (nb - 1) : 0);
                    for (size_t j = nb - 1, k = 0; j < seq.size() - 1 - last; j++, k++)
                        queries.push_back({t.first_output + li++, seq[j + 1], false, &dest[k]});
                }
            }
            decode_and_answer(ctx, batch, n_batch, queries);
            for (size_t i = i0; i < i1; i++) {
                const Prepared & t    = tasks[i];
                const size_t     c    = t.common;
                const bool       skip = t.seqs[0].size() - c > 3 && t.seqs[1].size() - c > 3;
                float            mean[2];
                for (int s = 0; s < 2; s++) {
                    const size_t nb   = skip ? t.base[s] : c;
                    const size_t last = t.seqs[size_t(s)].size() - nb > 1 ? 1 : 0;
                    float        sum  = 0;
                    for (float x : lp[2 * (i - i0) + size_t(s)])
                        sum += x;
                    mean[s] = sum / float(t.seqs[size_t(s)].size() - nb - last);
                }
                const int answer = mean[0] > mean[1] ? 1 : 2;
                score.correct += answer == set.winogrande[i].answer;
                score.n++;
            }
            i0 = i1;
            progress.update(i0);
        }
        progress.finish();
        return score;
    }
};

}  // namespace

int task_parallel(const std::vector<TaskSet> & sets) {
    size_t most = 4;
    for (const TaskSet & set : sets)
        for (const ChoiceTask & t : set.choice)
            most = std::max(most, t.endings.size());
    return int(most);
}

void check_task_sets(const llama_vocab * vocab, const std::vector<TaskSet> & sets, int n_ctx) {
    const uint32_t context = task_context(sets, n_ctx);
    for (const TaskSet & set : sets) {
        const std::vector<Prepared>    tasks = prepare_set(vocab, set);
        const std::vector<std::string> where = where_of(set);
        for (size_t i = 0; i < tasks.size(); i++) {
            if (tasks[i].required > context) {
                fail("%s: the task needs %zu tokens, more than the context of %u (%d sequences of -c %d): raise -c",
                     where[i].c_str(), tasks[i].required, context, task_parallel(sets), n_ctx);
            }
        }
    }
}

std::vector<TaskScore> score_task_sets(const std::string & model, const TaskRunOptions & o,
                                       const std::vector<TaskSet> & sets) {
    // llama-perplexity's task context: -np sequences (at least 4) of -c tokens in one unified
    // KV cache; -b capped at the context.
    const int           parallel = task_parallel(sets);
    LlamaRuntimeOptions r;
    static_cast<LlamaFlags &>(r) = o;
    r.n_ctx                      = uint32_t(parallel * o.n_ctx);
    r.n_batch                    = std::min(uint32_t(o.n_batch > 0 ? o.n_batch : 2048), r.n_ctx);
    r.n_ubatch                   = std::min(r.n_batch, uint32_t(o.n_ubatch > 0 ? o.n_ubatch : 512));
    r.n_seq_max                  = uint32_t(parallel);
    r.kv_unified                 = true;
    const LlamaRuntime     m     = open_llama(model, r);
    const Scorer           scorer{m.ctx.get(), m.vocab(), int(r.n_batch), o.progress, model};
    std::vector<TaskScore> out;
    for (const TaskSet & set : sets)
        out.push_back(set.format == TaskFormat::winogrande ? scorer.winogrande(set) : scorer.choice(set));
    return out;
}

}  // namespace reap
