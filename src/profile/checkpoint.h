// The profile's checkpoint is its stats file: written at --save-every, on a stop signal and at
// the end, with "_meta.progress" saying how far it got; --resume continues from it when the
// calibration tokens (fingerprint) and the model's MoE shape are the same.
#pragma once

#include "stats/expert_stats.h"

#include "llama.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reap {

// FNV-1a over the token stream: identifies "the same calibration set" for --resume.
uint64_t calibration_fingerprint(const std::vector<std::vector<llama_token>> & sequences);

struct ResumePoint {
    size_t                      samples_done = 0;
    uint64_t                    tokens_done  = 0;
    std::optional<StatsImatrix> imatrix;      // the importance matrix saved with the checkpoint
    std::optional<uint32_t>     merge_stats;  // --merge-stats N of the checkpoint's run
};

// Loads the checkpoint at `path` into `stats` (whose layers are the model's MoE layers) after
// checking that it was made from the same calibration tokens (meta.fingerprint) and the same
// model (check_same_model: shape, router weights, model file); `n_samples` is the number of
// sequences of this run.
ResumePoint resume_from_checkpoint(const std::string & path, const StatsMeta & meta, size_t n_samples,
                                   ExpertStats & stats);

// Writes the statistics with `meta` plus the date and the progress record.
void save_checkpoint(const std::string & path, const ExpertStats & stats, const StatsMeta & meta, size_t samples_done,
                     uint64_t tokens_done, bool complete);

}  // namespace reap
