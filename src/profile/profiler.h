// `reap profile`: run a GGUF MoE model over calibration data inside llama.cpp and collect the
// per-expert REAP statistics (what is measured where: docs/ARCHITECTURE.md, "Statistics").
#pragma once

#include "llama/context_size.h"
#include "llama/llama_flags.h"
#include "stats/expert_stats.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// The llama.cpp runtime flags (-t, -ngl, -fa, -ot, --rpc, ...) are the base class.
struct ProfileOptions : LlamaFlags {
    std::string              model;
    std::vector<std::string> data;
    std::string              format = "auto";
    std::string              chat_template;  // llama.cpp template name or file; empty: the model's
    std::string              output = "expert_stats.json";
    // --imatrix: also collect llama.cpp's importance matrix over the same tokens into this GGUF
    // file (profile/imatrix_collector.h), saved with every checkpoint; empty: none.
    std::string imatrix;
    // --merge-stats N: also collect the merge Grams (profile/merge_stats_collector.h), N tokens
    // sampled per micro-batch per layer for the expert-output Gram; 0: not collected.
    uint32_t merge_stats = 0;
    int      n_ctx       = k_ctx_size_not_given;  // max tokens per sample; .txt windows have this size
    // Tokens per llama_decode call. Every token is an output, and llama.cpp keeps n_batch rows
    // of n_vocab logits per call (1.2 GB at 2048 x 151,936): the default is one micro-batch.
    // 0: k_default_batch, or k_paged_batch when the model is larger than the memory available
    // (each micro-batch then reads almost the whole file from disk: bench/RESULTS.md, issue 31).
    int         n_batch     = 0;
    int         n_ubatch    = 0;   // tokens per micro-batch (0: min(n_batch, 512), or n_batch when paged)
    int         n_parallel  = 64;  // samples packed into one batch (sequences)
    long        max_samples = -1;
    long        max_tokens  = -1;
    uint64_t    seed        = 0;  // 0: file order; otherwise shuffle samples with this seed
    std::string shard;            // "i/N": profile the i-th of N parts of the selection
    int         save_every = 0;   // checkpoint every N samples (0: only at the end)
    bool        resume     = false;
    bool        strict     = false;
    bool        pack       = true;  // several samples per decode
    bool        collect    = true;  // false: decode the same batches without the callback (benchmark baseline)
    bool        skip_head  = true;  // end each micro-batch's graph after the last MoE layer (no logits)
    int         n_experts  = -1;    // if given, must equal the model's expert count
    bool        progress   = true;
};

struct ProfileResult {
    ExpertStats stats;
    size_t      samples_done = 0, samples_total = 0;  // sequences (windows) of this run
    // The calibration data before --max-samples/--max-tokens: samples read, the windows of at
    // most -c tokens they became, and their tokens.
    int      n_ctx        = 0;  // -c as used (llama/context_size.h)
    size_t   data_samples = 0, data_windows = 0;
    uint64_t data_tokens      = 0;
    uint64_t tokens           = 0;  // tokens evaluated in this run
    uint64_t tokens_total     = 0;  // tokens of all samples_total sequences
    size_t   shard_of_windows = 0;  // with --shard: the windows of all N shards together
    double   decode_seconds   = 0;  // time inside llama_decode (and the callback)
    double   collect_seconds  = 0;  // of which in the callback with data (MoeCollector::seconds)
    double   seconds          = 0;  // wall time of the profiling loop
    bool     interrupted      = false;
    int      nodes_per_layer  = 0;
    // Bytes the collector copied from device buffers (MoeCollector::bytes_read_from_devices), and
    // the part of them that are norms computed on the device (0: none was; REAP_DEVICE_NORMS).
    uint64_t device_bytes_read = 0, device_norms_bytes = 0;
};

// Runs the profile and writes opts.output (atomically; also at checkpoints). On SIGINT/SIGTERM
// a final checkpoint is written and the result says interrupted.
inline constexpr int k_default_batch = 512;
inline constexpr int k_paged_batch   = 2048;

// The option checks, without reading any file: throws UsageError (exit 2). run_profile calls it first.
void check_profile_options(const ProfileOptions & opts);

ProfileResult run_profile(const ProfileOptions & opts);

// "layer 3: highest REAP expert 5 (0.123), lowest 9 (0.000), never activated 2" per layer.
std::string profile_summary(const ExpertStats & s);

}  // namespace reap
