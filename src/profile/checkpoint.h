// The profile's checkpoint is its stats file: written at --save-every, on a stop signal and at
// the end, with "_meta.progress" saying how far it got; --resume continues from it when the
// calibration tokens (fingerprint) and the model's MoE shape are the same.
#pragma once

#include "stats/expert_stats.h"

#include "llama.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// FNV-1a over the token stream: identifies "the same calibration set" for --resume.
uint64_t calibration_fingerprint(const std::vector<std::vector<llama_token>> & sequences);

// Throws unless the checkpoint's "_meta" describes the model of this run's `meta`: the same
// architecture, model file name and size (a model of the same shape with other weights must
// not be mixed in). The one place --resume decides "same model"; to be replaced by the stats
// module's shared same-model check.
void check_checkpoint_model(const nlohmann::json & checkpoint, const nlohmann::json & meta, const std::string & path);

struct ResumePoint {
    size_t   samples_done = 0;
    uint64_t tokens_done  = 0;
};

// Loads the checkpoint at `path` into `stats` (whose layers are the model's MoE layers) after
// checking that it was made from the same calibration tokens (meta["fingerprint"]) and a model
// with `n_expert` experts per layer; `n_samples` is the number of sequences of this run.
ResumePoint resume_from_checkpoint(const std::string & path, const nlohmann::json & meta, uint32_t n_expert,
                                   size_t n_samples, ExpertStats & stats);

// Writes the statistics with `meta` plus the date and the progress record.
void save_checkpoint(const std::string & path, const ExpertStats & stats, const nlohmann::json & meta,
                     size_t samples_done, uint64_t tokens_done, bool complete);

}  // namespace reap
