#include "profile/profiler.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "core/system_memory.h"
#include "gguf/content_id.h"
#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"
#include "gguf/router_fingerprint.h"
#include "gguf/stats_imatrix.h"
#include "llama/context_size.h"
#include "llama/engine_abort_note.h"
#include "llama/llama_runtime.h"
#include "profile/batch_plan.h"
#include "profile/calibration.h"
#include "profile/checkpoint.h"
#include "profile/imatrix_collector.h"
#include "profile/moe_collector.h"
#include "profile/profile_meta.h"
#include "profile/samples.h"
#include "stats/milestones.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

namespace reap {

using nlohmann::json;

namespace {

// The model's MoE structure from the file itself: which layers to expect, how many experts.
// `shape`: the model as the stats file records it (with its router fingerprint).
// The model's MoE shape and its size in bytes (all split parts). Only these outlive the file:
// a MoeLayout holds pointers into the GgufFile, which is closed on return.
MoeShape read_model_shape(const ProfileOptions & opts, uint64_t & model_size) {
    const GgufFile  file   = GgufFile::open(opts.model);
    const MoeLayout layout = analyze_moe(file);
    if (opts.n_experts >= 0 && uint32_t(opts.n_experts) != layout.n_expert) {
        fail("--n-experts %d does not match %s, which has %u experts per MoE layer", opts.n_experts, opts.model.c_str(),
             layout.n_expert);
    }
    model_size = layout.file_size;
    return model_shape(file, layout);
}

// Refuses, before doing any work, an output that is one of the inputs (the model's files or
// the calibration data, also through a link) or that cannot be written, and a calibration file
// given twice (every token would count twice).
void check_output(const ProfileOptions & opts) {
    std::vector<std::string> inputs = model_files(opts.model).parts;
    inputs.insert(inputs.end(), opts.data.begin(), opts.data.end());
    refuse_output_over_inputs(opts.output, inputs);
    if (!opts.imatrix.empty()) refuse_clashing_outputs({opts.output, opts.imatrix}, inputs);
    refuse_input_given_twice(opts.data);  // as merge refuses a run given twice
    const std::string & output = opts.output;
    const std::string   probe  = output + ".probe";
    std::ofstream       f(probe);
    if (!f) {
        fail("%s: cannot write the stats file here", output.c_str());
    }
    f.close();
    std::remove(probe.c_str());
}

// -b and -ub when not given: one micro-batch of 512 tokens, or of 2048 when the model is larger
// than the memory available. Then each micro-batch reads almost the whole file from disk, since
// its tokens are routed to almost every expert: measured on a 30 GiB model on a 23.5 GiB machine,
// 4.7 passes over the file for 2048 tokens at 512, 2.1 at 2048 (one of them llama.cpp's load).
void resolve_batch_sizes(ProfileOptions & opts, uint64_t model_size) {
    const bool paged = opts.n_batch == 0 && exceeds_available_memory(model_size);
    if (opts.n_batch == 0) opts.n_batch = paged ? k_paged_batch : k_default_batch;
    if (opts.n_ubatch == 0) opts.n_ubatch = paged ? opts.n_batch : std::min(opts.n_batch, k_default_batch);
    if (paged) {
        log_info(
            "%s is larger than the memory available: -b and -ub default to %d, so that each pass of the weights "
            "from disk serves %d tokens instead of %d",
            opts.model.c_str(), k_paged_batch, k_paged_batch, k_default_batch);
    }
}

// One context for all batches: n_ctx holds the longest call, one sequence per packed sample.
LlamaRuntimeOptions runtime_options(const ProfileOptions & opts, int n_parallel, MoeCollector & collector) {
    LlamaRuntimeOptions r;
    static_cast<LlamaFlags &>(r) = opts;
    r.n_ctx                      = uint32_t(std::max(opts.n_ctx, opts.n_batch));
    r.n_batch                    = uint32_t(opts.n_batch);
    r.n_ubatch                   = uint32_t(std::min(opts.n_ubatch, opts.n_batch));
    r.n_seq_max                  = uint32_t(n_parallel);
    r.kv_unified                 = true;
    if (opts.collect) {
        r.cb_eval           = MoeCollector::eval_callback;
        r.cb_eval_user_data = &collector;
    }
    return r;
}

// The sequences to decode, in order: tokenized, shuffled with --seed, cut to the limits;
// `res` records how much of the data that is.
TokenizedSamples select_samples(const llama_model * model, const std::vector<CalibSample> & samples,
                                const ProfileOptions & opts, std::vector<CalibFileReport> & report,
                                ProfileResult & res) {
    TokenizedSamples items =
        tokenize_samples(model, samples, opts.data, {opts.n_ctx, opts.chat_template, opts.strict}, report);
    if (opts.seed != 0) {
        shuffle_samples(items, opts.seed);
    }
    res.data_samples = samples.size();
    res.data_windows = items.size();
    res.data_tokens  = items.total_tokens();
    limit_samples(items, opts.max_samples, opts.max_tokens);
    if (!opts.shard.empty()) {
        // The shard is cut from the final selection, so the N shards together are that selection.
        uint32_t index = 0, count = 0;
        parse_shard(opts.shard, index, count);
        res.shard_of_windows = items.size();
        StatsShard shard{count, {index}, strfmt("%016llx", (unsigned long long) calibration_fingerprint(items.tokens))};
        take_shard(items, index, count);
        res.stats.meta.shard = shard;  // carried to the run's meta
        if (items.size() == 0) {
            fail("--shard %s: no samples in this shard (the selection has %zu windows)", opts.shard.c_str(),
                 res.shard_of_windows);
        }
    }
    if (items.size() == 0) {
        fail("no calibration tokens left to evaluate");
    }
    return items;
}

// Decodes token ranges on one context; every token is an output (see ARCHITECTURE.md:
// llama.cpp drops non-output rows before the last layer's FFN).
class Decoder {
public:
    Decoder(llama_context * ctx, MoeCollector & collector, int n_batch)
        : ctx_(ctx), collector_(collector), batch_(n_batch) {}

    void decode(const DecodeCall & call) {
        llama_batch & b = batch_.b;
        b.n_tokens      = 0;
        for (size_t s = 0; s < call.size(); s++) {
            batch_add_outputs(b, *call[s].tokens, call[s].from, call[s].len, llama_seq_id(s));
        }
        const int rc = llama_decode(ctx_, b);
        collector_.check_error();
        if (rc != 0) {
            fail("llama_decode failed (%d) on a batch of %d tokens", rc, b.n_tokens);
        }
    }
    void clear() { llama_memory_clear(llama_get_memory(ctx_), true); }

private:
    llama_context * ctx_;
    MoeCollector &  collector_;
    LlamaBatch      batch_;
};

// Discovery: one token through the graph to learn this architecture's node names.
void discover_moe_nodes(Decoder & decoder, MoeCollector & collector, const llama_vocab * vocab,
                        const TokenizedSamples & items) {
    collector.begin_discovery();
    const std::vector<llama_token> one = {llama_vocab_bos(vocab) >= 0 ? llama_vocab_bos(vocab) : items.tokens[0][0]};
    decoder.decode({{&one, 0, 1}});
    collector.end_discovery();
    decoder.clear();
}

// The profiling loop from `from` to the end or a stop signal; checkpoints on the way and at
// the end.
void decode_samples(const ProfileOptions & opts, int n_parallel, Decoder & decoder, MoeCollector & collector,
                    ImatrixCollector * imatrix, const TokenizedSamples & items, const StatsMeta & meta,
                    ResumePoint from, ProfileResult & res) {
    uint64_t tokens_done = from.tokens_done;
    // Should llama.cpp abort the run (a lost --rpc server), its note says how to go on.
    const std::string resume_hint = "the checkpoint " + opts.output +
                                    " keeps the samples done so far: continue with "
                                    "the same command and --resume";
    set_engine_abort_hint(!opts.collect           ? ""
                          : from.samples_done > 0 ? resume_hint
                                                  : "no checkpoint yet (--save-every N writes checkpoints that "
                                                    "--resume continues)");
    auto save = [&](size_t samples_done, bool complete) {
        if (!opts.collect) return;
        StatsMeta with = meta;
        if (imatrix != nullptr) {
            // The imatrix first: the stats file then names a file that holds what it says.
            const Imatrix m = imatrix->imatrix(opts.data, uint32_t(opts.n_ctx), tokens_done);
            write_imatrix(opts.imatrix, m);
            with.imatrix = StatsImatrix{imatrix_reference(opts.output, opts.imatrix), imatrix_hash_text(m)};
        }
        save_checkpoint(opts.output, collector.stats(), with, samples_done, tokens_done, complete);
        set_engine_abort_hint(resume_hint);
    };
    StopSignalGuard signals;
    Progress        progress("profile", items.total_tokens(), "tokens", opts.progress);
    const auto      t0        = std::chrono::steady_clock::now();
    size_t          i         = from.samples_done;
    size_t          last_ckpt = i;
    // A line before the first batch, which can take a while on a large model.
    progress.resume_from(tokens_done);
    progress.update(tokens_done, strfmt("%zu/%zu samples", i, items.size()), true);
    while (i < items.size()) {
        const auto      d0   = std::chrono::steady_clock::now();
        const BatchStep step = plan_next_batch(items.tokens, i, n_parallel, opts.n_batch);
        for (const DecodeCall & call : step.calls) {
            decoder.decode(call);
        }
        decoder.clear();
        res.decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
        for (size_t k = i; k < step.next; k++) {
            tokens_done += items.tokens[k].size();
            res.tokens += items.tokens[k].size();
        }
        i = step.next;
        if (opts.collect) record_milestones(collector.stats(), tokens_done, items.total_tokens());
        progress.update(tokens_done, strfmt("%zu/%zu samples, %.0f tok/s", i, items.size(),
                                            res.decode_seconds > 0 ? double(res.tokens) / res.decode_seconds : 0.0));
        if (signals.received() != 0) {
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
    if (res.interrupted) {
        log_warn("interrupted by signal %d after %zu of %zu samples; checkpoint written to %s (continue with --resume)",
                 signals.received(), i, items.size(), opts.output.c_str());
    }
}

// --resume with --imatrix: the imatrix saved with the checkpoint, checked to be that one.
void resume_imatrix(const ProfileOptions & opts, const ResumePoint & from, ImatrixCollector & imatrix) {
    if (from.samples_done == 0) return;
    if (!from.imatrix) {
        if (opts.imatrix.empty()) return;
        fail(
            "%s: the checkpoint was saved without --imatrix, and an importance matrix cannot start midway; resume "
            "without --imatrix, or start over",
            opts.output.c_str());
    }
    const std::string saved = imatrix_path_of(opts.output, *from.imatrix);
    if (opts.imatrix.empty()) {
        fail("%s: the checkpoint was saved with the importance matrix %s: resume with --imatrix %s",
             opts.output.c_str(), saved.c_str(), saved.c_str());
    }
    if (!same_file(saved, opts.imatrix)) {
        fail("%s: the checkpoint's importance matrix is %s, not %s", opts.output.c_str(), saved.c_str(),
             opts.imatrix.c_str());
    }
    const Imatrix m = read_imatrix(opts.imatrix);
    if (imatrix_hash_text(m) != from.imatrix->hash) {
        fail(
            "%s: not the importance matrix saved with the checkpoint %s (written by another run, or the save was "
            "interrupted); start over without --resume",
            opts.imatrix.c_str(), opts.output.c_str());
    }
    imatrix.resume_from(m);
}

// --resume: the checkpoint's merge Grams go on only with the same --merge-stats N (a Gram cannot
// start midway, and another N would mix two samples under one label).
void resume_merge_stats(const ProfileOptions & opts, const ResumePoint & from) {
    const std::string was =
        from.merge_stats ? strfmt("with --merge-stats %u", *from.merge_stats) : "without --merge-stats";
    const std::string now =
        opts.merge_stats ? strfmt("with --merge-stats %u", opts.merge_stats) : "without --merge-stats";
    if (was != now) {
        fail("%s: the checkpoint was saved %s: resume %s too, or start over", opts.output.c_str(), was.c_str(),
             was.c_str());
    }
}

}  // namespace

void check_profile_options(const ProfileOptions & opts) {
    if (opts.n_ctx != k_ctx_size_not_given && opts.n_ctx != 0 && opts.n_ctx < 8) {
        fail_usage("-c/--ctx-size must be at least 8 (0: the model's trained context)");
    }
    if (opts.n_batch < 0 || opts.n_ubatch < 0) fail_usage("-b and -ub must be positive (0: the default)");
    if (opts.n_parallel < 1 || opts.n_parallel > 256) fail_usage("-np/--parallel must be in [1, 256]");
    if (opts.save_every < 0) fail_usage("--save-every must be >= 0");
    if (!opts.collect && !opts.imatrix.empty()) fail_usage("--imatrix collects: it cannot go with --no-collect");
    if (!opts.collect && opts.merge_stats > 0) fail_usage("--merge-stats collects: it cannot go with --no-collect");
    uint32_t index = 0, count = 0;
    if (!opts.shard.empty()) parse_shard(opts.shard, index, count);
}

ProfileResult run_profile(const ProfileOptions & given) {
    check_profile_options(given);
    ProfileOptions opts = given;
    opts.n_ctx          = resolve_ctx_size(given.n_ctx, given.model);
    if (opts.n_ctx < 8)
        fail("%s: a trained context of %d tokens is too short to profile", opts.model.c_str(), opts.n_ctx);
    uint64_t       model_size = 0;
    const MoeShape shape      = read_model_shape(opts, model_size);
    resolve_batch_sizes(opts, model_size);
    const std::vector<int> moe_layers = shape.moe_layers;  // next-token-prediction blocks get no statistics
    check_output(opts);

    std::vector<CalibFileReport> report;
    const auto samples = load_calibration(opts.data, parse_calib_format(opts.format), opts.strict, report);

    // llama.cpp reserves one output row per sequence within a batch: more sequences than -b
    // tokens would abort inside llama.cpp, and could never be filled anyway.
    const int    n_parallel = opts.pack ? std::min(opts.n_parallel, opts.n_batch) : 1;
    MoeCollector collector(shape.n_expert, moe_layers);
    collector.set_stop_after_last_layer(opts.skip_head);
    ImatrixCollector imatrix;
    if (!opts.imatrix.empty()) collector.set_imatrix(&imatrix);
    MergeStatsCollector merge(opts.merge_stats, shape.arch);
    if (opts.merge_stats > 0 && opts.collect) collector.set_merge_stats(&merge);
    const int batch_threads = opts.n_threads_batch > 0 ? opts.n_threads_batch
                              : opts.n_threads > 0     ? opts.n_threads
                                                       : int(std::thread::hardware_concurrency());
    collector.set_threads(batch_threads);
    merge.set_threads(batch_threads);
    const LlamaRuntime rt = open_llama(opts.model, runtime_options(opts, n_parallel, collector));
    ProfileResult      res;
    res.n_ctx        = opts.n_ctx;
    const auto items = select_samples(rt.model.get(), samples, opts, report, res);
    Decoder    decoder(rt.ctx.get(), collector, opts.n_batch);
    if (opts.collect) {
        discover_moe_nodes(decoder, collector, rt.vocab(), items);
    }

    const uint64_t fingerprint = calibration_fingerprint(items.tokens);
    StatsMeta      meta =
        profile_meta(opts, shape, model_size, fingerprint, opts.collect ? &collector : nullptr, items, report);
    meta.shard            = res.stats.meta.shard;
    meta.model_content_id = model_content_id_text(GgufFile::open(opts.model));
    ResumePoint from;
    if (opts.resume) {
        from = resume_from_checkpoint(opts.output, meta, items.size(), collector.stats());
        resume_imatrix(opts, from, imatrix);
        resume_merge_stats(opts, from);
    }

    res.samples_total   = items.size();
    res.tokens_total    = items.total_tokens();
    res.nodes_per_layer = opts.collect ? collector.nodes_requested_per_layer() : 0;
    decode_samples(opts, n_parallel, decoder, collector, opts.imatrix.empty() ? nullptr : &imatrix, items, meta, from,
                   res);
    res.stats              = collector.stats();
    res.stats.meta         = meta;
    res.device_bytes_read  = collector.bytes_read_from_devices();
    res.device_norms_bytes = collector.device_norms_bytes();
    res.collect_seconds    = collector.seconds();
    return res;
}

}  // namespace reap
