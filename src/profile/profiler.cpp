#include "profile/profiler.h"

#include "profile/calibration.h"
#include "core/fs_util.h"
#include "llama/llama_util.h"
#include "core/error.h"
#include "core/hash.h"
#include "gguf/gguf_file.h"
#include "core/log.h"
#include "profile/moe_collector.h"
#include "moe/moe_layout.h"
#include "moe/router_fingerprint.h"
#include "core/progress.h"

#include "llama.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

namespace reap {

using nlohmann::json;

namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// Installs SIGINT/SIGTERM handlers for the lifetime of the profile run.
struct SignalGuard {
    struct sigaction old_int {}, old_term {};
    SignalGuard() {
        g_stop_signal = 0;
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
    }
    ~SignalGuard() {
        sigaction(SIGINT, &old_int, nullptr);
        sigaction(SIGTERM, &old_term, nullptr);
    }
};

ggml_type parse_cache_type(const std::string & s) {
    for (ggml_type t : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                        GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_IQ4_NL}) {
        if (s == ggml_type_name(t)) {
            return t;
        }
    }
    fail("unknown KV cache type '%s' (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl)", s.c_str());
}

std::string render_chat(const llama_model * model, const json & messages, const std::string & where) {
    const char * tmpl = llama_model_chat_template(model, nullptr);
    if (tmpl == nullptr) {
        fail("%s: a 'messages' sample needs a chat template, and the model has none", where.c_str());
    }
    std::vector<std::string>        roles, contents;
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

// FNV-1a over the token stream: identifies "the same calibration set" for --resume.
uint64_t fingerprint(const std::vector<std::vector<llama_token>> & items) {
    Fnv1a h;
    for (const auto & it : items) {
        for (llama_token t : it) {
            h.u32_le(uint32_t(t));
        }
        h.byte(0xfe);
    }
    return h.h;
}

}  // namespace

ProfileResult run_profile(const ProfileOptions & opts) {
    if (opts.n_ctx < 8) fail("-c/--ctx-size must be at least 8");
    if (opts.n_batch < 1 || opts.n_ubatch < 1) fail("-b and -ub must be positive");
    if (opts.n_parallel < 1 || opts.n_parallel > 256) fail("-np/--parallel must be in [1, 256]");
    if (opts.save_every < 0) fail("--save-every must be >= 0");

    // The model's MoE structure from the file itself: which layers to expect, how many experts.
    const GgufFile  file   = GgufFile::open(opts.model);
    const MoeLayout layout = analyze_moe(file);
    if (opts.n_experts >= 0 && uint32_t(opts.n_experts) != layout.n_expert) {
        fail("--n-experts %d does not match %s, which has %u experts per MoE layer", opts.n_experts, opts.model.c_str(),
             layout.n_expert);
    }
    std::vector<int> moe_layers = layout.moe_layer_indices();
    // Next-token-prediction blocks are not part of the main forward pass: no statistics.
    moe_layers.erase(std::remove_if(moe_layers.begin(), moe_layers.end(),
                                    [&](int il) { return layout.layers[size_t(il)].is_nextn; }),
                     moe_layers.end());

    // Refuse an unwritable output before doing any work.
    {
        const std::string probe = opts.output + ".probe";
        std::ofstream     f(probe);
        if (!f) {
            fail("%s: cannot write the stats file here", opts.output.c_str());
        }
        f.close();
        std::remove(probe.c_str());
    }

    std::vector<CalibFileReport> report;
    const auto samples = load_calibration(opts.data, parse_calib_format(opts.format), opts.strict, report);

    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers       = opts.n_gpu_layers;
    LlamaModelPtr model(llama_model_load_from_file(opts.model.c_str(), mp));
    if (!model) {
        fail("%s: llama.cpp could not load the model", opts.model.c_str());
    }
    const llama_vocab * vocab = llama_model_get_vocab(model.get());

    // Tokenize everything up front: totals for the progress line and a fingerprint for resume.
    std::vector<std::vector<llama_token>> items;
    std::vector<size_t>                   item_file;
    for (const auto & s : samples) {
        const std::string where = opts.data[s.file] + (s.line ? ":" + std::to_string(s.line) : "");
        if (s.is_plain) {
            for (auto & win : text_windows(vocab, s.text, opts.n_ctx)) {
                items.push_back(std::move(win));
                item_file.push_back(s.file);
            }
            continue;
        }
        auto toks = s.is_chat ? tokenize(vocab, render_chat(model.get(), s.messages, where), true, true)
                              : tokenize(vocab, s.text, true, false);
        if (toks.size() > size_t(opts.n_ctx)) {
            toks.resize(size_t(opts.n_ctx));
        }
        if (!toks.empty()) {
            items.push_back(std::move(toks));
            item_file.push_back(s.file);
        }
    }
    if (opts.seed != 0) {
        std::vector<size_t> order(items.size());
        for (size_t i = 0; i < order.size(); i++) order[i] = i;
        std::mt19937_64 rng(opts.seed);
        for (size_t i = order.size(); i > 1; i--) {
            std::swap(order[i - 1], order[size_t(rng() % i)]);
        }
        std::vector<std::vector<llama_token>> shuffled;
        std::vector<size_t>                   shuffled_file;
        for (size_t i : order) {
            shuffled.push_back(std::move(items[i]));
            shuffled_file.push_back(item_file[i]);
        }
        items.swap(shuffled);
        item_file.swap(shuffled_file);
    }
    if (opts.max_samples >= 0 && items.size() > size_t(opts.max_samples)) {
        items.resize(size_t(opts.max_samples));
        item_file.resize(items.size());
    }
    if (opts.max_tokens >= 0) {
        uint64_t sum = 0;
        for (size_t i = 0; i < items.size(); i++) {
            if (sum + items[i].size() >= uint64_t(opts.max_tokens)) {
                items[i].resize(size_t(uint64_t(opts.max_tokens) - sum));
                items.resize(items[i].empty() ? i : i + 1);
                break;
            }
            sum += items[i].size();
        }
        item_file.resize(items.size());
    }
    if (items.empty()) {
        fail("no calibration tokens left to evaluate");
    }
    uint64_t total_tokens = 0;
    for (const auto & it : items) total_tokens += it.size();
    const uint64_t fp = fingerprint(items);

    // One context for all batches; every token is an output (see ARCHITECTURE.md: llama.cpp
    // drops non-output rows before the last layer's FFN).
    const int            n_par = opts.pack ? opts.n_parallel : 1;
    MoeCollector         collector(layout.n_expert, moe_layers);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx                = uint32_t(std::max(opts.n_ctx, opts.n_batch));
    cp.n_batch              = uint32_t(opts.n_batch);
    cp.n_ubatch             = uint32_t(std::min(opts.n_ubatch, opts.n_batch));
    cp.n_seq_max            = uint32_t(n_par);
    cp.kv_unified           = true;
    cp.n_threads            = opts.n_threads > 0 ? opts.n_threads : int(std::thread::hardware_concurrency());
    cp.n_threads_batch      = cp.n_threads;
    cp.type_k               = parse_cache_type(opts.type_k);
    cp.type_v               = parse_cache_type(opts.type_v);
    cp.no_perf              = true;
    if (opts.collect) {
        cp.cb_eval           = MoeCollector::eval_callback;
        cp.cb_eval_user_data = &collector;
    }
    LlamaContextPtr ctx(llama_init_from_model(model.get(), cp));
    if (!ctx) {
        fail("%s: llama.cpp could not create a context (n_ctx=%u, n_batch=%d)", opts.model.c_str(), cp.n_ctx, opts.n_batch);
    }
    llama_memory_t mem = llama_get_memory(ctx.get());

    LlamaBatch   owned_batch(opts.n_batch);
    llama_batch & batch = owned_batch.b;
    // One decode of token ranges, each its own sequence; every token is an output.
    struct Piece {
        const std::vector<llama_token> * tokens;
        size_t                           from, len;
    };
    auto decode = [&](const std::vector<Piece> & pieces) {
        batch.n_tokens = 0;
        for (size_t s = 0; s < pieces.size(); s++) {
            batch_add_outputs(batch, *pieces[s].tokens, pieces[s].from, pieces[s].len, llama_seq_id(s));
        }
        const int rc = llama_decode(ctx.get(), batch);
        collector.check_error();
        if (rc != 0) {
            fail("llama_decode failed (%d) on a batch of %d tokens", rc, batch.n_tokens);
        }
    };

    if (opts.collect) {
        // Discovery: one token through the graph to learn this architecture's node names.
        collector.begin_discovery();
        std::vector<llama_token> one = {llama_vocab_bos(vocab) >= 0 ? llama_vocab_bos(vocab) : items[0][0]};
        decode({{&one, 0, 1}});
        collector.end_discovery();
        llama_memory_clear(mem, true);
    }

    ProfileResult res;
    res.samples_total   = items.size();
    res.nodes_per_layer = opts.collect ? collector.nodes_requested_per_layer() : 0;

    StatsMeta meta   = StatsMeta::for_model(model_shape(file, layout), opts.model, layout.file_size);
    meta.tool        = std::string("reap.cpp ") + REAP_VERSION;
    meta.fingerprint = strfmt("%016llx", (unsigned long long) fp);
    meta.options     = {{"ctx_size", opts.n_ctx}, {"batch_size", opts.n_batch}, {"ubatch_size", opts.n_ubatch},
                        {"format", opts.format}, {"seed", opts.seed}, {"max_samples", opts.max_samples},
                        {"max_tokens", opts.max_tokens}};
    if (opts.collect) {
        bool before = false;
        for (int il : moe_layers) before = before || collector.gate_before_expert(il);
        meta.gate_applied_before_expert = before;
    }
    json files = json::array();
    for (size_t f = 0; f < opts.data.size(); f++) {
        size_t   n = 0;
        uint64_t t = 0;
        for (size_t i = 0; i < items.size(); i++) {
            if (item_file[i] == f) {
                n++;
                t += items[i].size();
            }
        }
        files.push_back({{"file", opts.data[f]}, {"samples", n}, {"tokens", t}, {"skipped_lines", report[f].skipped}});
    }
    meta.calibration = files;

    size_t   start = 0;
    uint64_t tokens_before = 0;
    if (opts.resume) {
        ExpertStats prev;
        try {
            prev = ExpertStats::load(opts.output);
        } catch (const Error & e) {
            fail("cannot resume: %s", e.what());
        }
        const StatsMeta & pm = prev.meta;
        if (!pm.fingerprint || *pm.fingerprint != *meta.fingerprint) {
            fail("%s: checkpoint was made with other calibration data or options; cannot resume", opts.output.c_str());
        }
        check_same_model(meta, pm, opts.output, SameModel::file, "the model being profiled");
        if (prev.layers.size() != moe_layers.size()) {
            fail("%s: checkpoint belongs to another model; cannot resume", opts.output.c_str());
        }
        for (auto & [il, L] : prev.layers) {
            if (!collector.stats().layers.count(il)) {
                fail("%s: checkpoint has layer %d, which is not a MoE layer of the model", opts.output.c_str(), il);
            }
            collector.stats().layers.at(il) = L;
        }
        start         = pm.progress ? size_t(pm.progress->samples_done) : 0;
        tokens_before = pm.progress ? pm.progress->tokens_done : 0;
        if (start > items.size()) {
            fail("%s: checkpoint says %zu samples done, but there are only %zu", opts.output.c_str(), start, items.size());
        }
        log_info("resuming after %zu of %zu samples", start, items.size());
    }

    uint64_t tokens_done = tokens_before;
    auto     save = [&](size_t samples_done, bool complete) {
        if (!opts.collect) return;
        ExpertStats out  = collector.stats();
        out.meta          = meta;
        out.meta.date     = iso_utc_now();
        out.meta.samples  = samples_done;
        out.meta.tokens   = tokens_done;
        out.meta.progress = StatsProgress{samples_done, tokens_done, complete};
        out.save(opts.output);
    };

    SignalGuard signals;
    Progress    progress("profile", total_tokens, "tokens", opts.progress);
    const auto  t0 = std::chrono::steady_clock::now();
    size_t      i  = start;
    size_t      last_ckpt = start;
    while (i < items.size()) {
        const auto d0 = std::chrono::steady_clock::now();
        size_t     next;
        if (items[i].size() > size_t(opts.n_batch) || n_par == 1) {
            // One sample alone, in n_batch-sized pieces that continue the sequence.
            for (size_t from = 0; from < items[i].size(); from += size_t(opts.n_batch)) {
                decode({{&items[i], from, std::min(size_t(opts.n_batch), items[i].size() - from)}});
            }
            next = i + 1;
        } else {
            // Whole samples, as many as fit in one batch, each its own sequence.
            std::vector<Piece> seqs;
            size_t             n_tok = 0;
            next                     = i;
            while (next < items.size() && int(seqs.size()) < n_par && n_tok + items[next].size() <= size_t(opts.n_batch)) {
                seqs.push_back({&items[next], 0, items[next].size()});
                n_tok += items[next].size();
                next++;
            }
            decode(seqs);
        }
        llama_memory_clear(mem, true);
        res.decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
        for (size_t k = i; k < next; k++) {
            tokens_done += items[k].size();
            res.tokens += items[k].size();
        }
        i = next;
        progress.update(tokens_done, strfmt("%zu/%zu samples, %.0f tok/s", i, items.size(),
                                            res.decode_seconds > 0 ? double(res.tokens) / res.decode_seconds : 0.0));
        if (g_stop_signal != 0) {
            res.interrupted = true;
            break;
        }
        if (opts.save_every > 0 && i - last_ckpt >= size_t(opts.save_every) && i < items.size()) {
            save(i, false);
            last_ckpt = i;
        }
    }
    progress.finish();
    res.seconds      = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.samples_done = i;
    save(i, i == items.size());
    res.stats      = collector.stats();
    res.stats.meta = meta;
    if (res.interrupted) {
        log_warn("interrupted by signal %d after %zu of %zu samples; checkpoint written to %s (continue with --resume)",
                 int(g_stop_signal), i, items.size(), opts.output.c_str());
    }
    return res;
}

std::string profile_summary(const ExpertStats & s) {
    std::string out;
    for (const auto & [il, L] : s.layers) {
        const auto r  = L.reap();
        size_t     hi = 0, lo = 0;
        for (size_t e = 1; e < r.size(); e++) {
            if (r[e] > r[hi]) hi = e;
            if (r[e] < r[lo]) lo = e;
        }
        out += strfmt("layer %3d: %llu tokens, highest REAP expert %3zu (%.4g), lowest %3zu (%.4g), never activated %u\n",
                      il, (unsigned long long) L.total_tokens, hi, r[hi], lo, r[lo], L.never_activated());
    }
    return out;
}

}  // namespace reap
