// `reap merge`: several stats files of runs on the same model into one (sums and counts add).
#pragma once

#include "stats/expert_stats.h"

#include <string>
#include <vector>

namespace reap {

// Combines the "_meta" of several runs for `reap merge` (`paths` in the order of `metas`): sums
// samples and tokens, concatenates calibration files, records merged_from; not resumable (no
// fingerprint). Keeps progress.complete = false when any input is an unfinished checkpoint.
StatsMeta merge_metas(const std::vector<StatsMeta> & metas, const std::vector<std::string> & paths);

// Loads and merges `paths` (at least two). Refuses, naming the file: the same file twice (by
// path, link or identical calibration fingerprint: it would count the same tokens twice), and
// statistics of different models (check_same_model, then the layers). Shards of `profile
// --shard i/N` must all be of one sharding of the same data, each shard at most once; missing
// shards are named in a warning and the result records the shards it covers. An unfinished checkpoint
// among the inputs keeps the result marked unfinished (meta.progress.complete = false).
ExpertStats merge_stats_files(const std::vector<std::string> & paths);

// Loads `paths` with merge's checks of the inputs (the same file or run twice, statistics of
// different models), without the shard rules: also for prune's several calibration sets
// (stats/stats_combine.h).
std::vector<ExpertStats> load_same_model_stats(const std::vector<std::string> & paths);

}  // namespace reap
