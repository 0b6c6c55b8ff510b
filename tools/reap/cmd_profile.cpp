#include "commands.h"
#include "core/error.h"
#include "core/stop_signal.h"
#include "profile/merge_stats_collector.h"
#include "profile/profiler.h"

#include <cstdio>

namespace reap::cli {

namespace {

void profile(const ProfileOptions & o) {
    const ProfileResult r   = run_profile(o);
    const double        tps = r.decode_seconds > 0 ? double(r.tokens) / r.decode_seconds : 0.0;
    if (o.collect) {
        std::fputs(profile_summary(r.stats).c_str(), stdout);
    }
    std::printf("%s %zu/%zu samples, %llu tokens in %.2f s (%.1f tokens/s)%s%s\n",
                r.interrupted ? "interrupted after" : "profiled", r.samples_done, r.samples_total,
                (unsigned long long) r.tokens, r.decode_seconds, tps, o.collect ? "; stats: " : "",
                o.collect ? o.output.c_str() : "");
    if (o.collect) {
        std::printf("collector: %.2f s of the decode time in the eval callback; %.1f MB read from devices\n",
                    r.collect_seconds, double(r.device_bytes_read) / 1e6);
    }
    if (o.collect && o.merge_stats > 0) {
        std::printf("merge statistics: router-logit and expert-output Grams (%u tokens sampled per micro-batch)\n",
                    o.merge_stats);
    }
    if (o.collect && !o.imatrix.empty()) {
        std::printf("importance matrix: %s\n", o.imatrix.c_str());
    }
    std::printf("calibration: %zu samples in %zu windows of at most %d tokens, %llu tokens", r.data_samples,
                r.data_windows, r.n_ctx, (unsigned long long) r.data_tokens);
    if (o.shard.empty() && (r.samples_total < r.data_windows || r.tokens_total < r.data_tokens)) {
        std::printf("; %zu windows, %llu tokens left out by --max-samples/--max-tokens",
                    r.data_windows - r.samples_total, (unsigned long long) (r.data_tokens - r.tokens_total));
    }
    if (!o.shard.empty()) {
        std::printf("; shard %s: %zu of the %zu windows", o.shard.c_str(), r.samples_total, r.shard_of_windows);
    }
    std::printf("\n");
    if (r.interrupted) {
        throw Interrupted("interrupted; checkpoint saved to " + o.output + " (continue with --resume)");
    }
}

}  // namespace

void add_profile(CLI::App & app, CommandRun & run) {
    auto   o = std::make_shared<ProfileOptions>();
    auto * cmd =
        app.add_subcommand("profile", "collect per-expert REAP statistics by running the model on calibration data");
    cmd->add_option("-m,--model", o->model, "GGUF model (any split of a split model)")->required();
    cmd->add_option("--data,--jsonl", o->data,
                    "calibration file(s): .jsonl (prompt/response, text or messages) or .txt")
        ->required();
    cmd->add_option("-o,--output", o->output, "stats file to write (JSON)");
    cmd->add_option("--imatrix", o->imatrix,
                    "also collect llama.cpp's importance matrix over the same tokens into this GGUF file "
                    "(llama-imatrix's format and rules, for llama-quantize --imatrix and reap prune --imatrix; saved "
                    "with every checkpoint)");
    auto merge_stats = std::make_shared<std::string>();
    cmd->add_option("--merge-stats", *merge_stats,
                    "also collect what expert merging needs (REAM, M-SMoE): per MoE layer the Gram of the router "
                    "logits over every token and the gate-weighted Gram of every expert's output over N tokens "
                    "sampled per micro-batch (every expert run on each); N is required (16 is a good start)")
        ->type_name("N");
    cmd->add_option("--format", o->format, "calibration format: auto, prompt-response, text, messages, txt")
        ->check(CLI::IsMember({"auto", "prompt-response", "text", "messages", "txt"}));
    cmd->add_option(
        "--chat-template", o->chat_template,
        "template for 'messages' samples: a llama.cpp name (chatml, llama3, ...) or a file (default: the model's)");
    cmd->add_option("-c,--ctx-size", o->n_ctx,
                    "max tokens per sample; .txt files are cut into windows of this size as llama-imatrix cuts them "
                    "(a tail shorter than a window is left out) (0: the model's trained context; a larger value is "
                    "warned about)")
        ->default_str(k_ctx_size_default_text);
    cmd->add_option("-b,--batch-size", o->n_batch,
                    "tokens per llama_decode call; llama.cpp keeps -b x n_vocab logits, as every token is an output "
                    "(0: 512, or 2048 when the model is larger than the memory available: each micro-batch then reads "
                    "the weights from disk)");
    cmd->add_option("--ubatch-size", o->n_ubatch,
                    "tokens per micro-batch (alias -ub; 0: -b up to 512, or -b when the model is larger than the "
                    "memory available)");
    cmd->add_option("--parallel", o->n_parallel,
                    "samples packed into one batch as separate sequences, at most -b (alias -np)");
    cmd->add_flag("!--no-pack", o->pack, "decode one sample per call (slower; results are the same)");
    add_llama_flags(*cmd, *o);
    cmd->add_option("--max-samples", o->max_samples, "use at most this many samples (-1: all)");
    cmd->add_option("--max-tokens", o->max_tokens, "evaluate at most this many tokens (-1: all)");
    cmd->add_option("--seed", o->seed, "shuffle the samples with this seed (0: keep file order)");
    cmd->add_option("--shard", o->shard,
                    "i/N: profile only the i-th of N deterministic parts of the samples (after --seed and the "
                    "limits); merge the N stats files with 'reap merge' (docs/DISTRIBUTED.md)");
    cmd->add_option("--save-every", o->save_every, "write a checkpoint every N samples (0: only at the end)");
    cmd->add_flag("--resume", o->resume, "continue from the checkpoint in --output");
    cmd->add_flag("--strict", o->strict,
                  "a malformed calibration line or a sample that cannot be rendered is an error instead of a warning");
    cmd->add_option("--n-experts", o->n_experts, "expected experts per layer, checked against the model (-1: read it)");
    cmd->add_flag("!--no-progress", o->progress, "no progress line on stderr");
    cmd->add_flag("!--no-skip-head", o->skip_head,
                  "also compute the output head (logits) after the last MoE layer, as plain inference does (slower; "
                  "same statistics)");
    cmd->add_flag("!--no-collect", o->collect,
                  "benchmark baseline: decode the same batches without collecting statistics, write nothing");
    cmd->callback([o, merge_stats, cmd, &run]() {
        if (cmd->count("--merge-stats") > 0) o->merge_stats = parse_merge_stats(*merge_stats);
        check_profile_options(*o);
        run = [o]() { profile(*o); };
    });
}

}  // namespace reap::cli
