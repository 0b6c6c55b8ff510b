// The importance matrices stats files record (`_meta.imatrix`, written by `reap profile
// --imatrix`): found beside their stats file, checked to be the ones recorded (the hash), and
// added up for `reap merge` as the statistics are.
#pragma once

#include "gguf/imatrix_file.h"
#include "stats/stats_meta.h"

#include <optional>
#include <string>
#include <vector>

namespace reap {

// The reference a stats file at `stats_path` records for the imatrix at `imatrix_path`: its base
// name when the two share a folder (the pair can be moved together), else the path made absolute;
// and back: the path of the imatrix a recorded reference names.
std::string imatrix_reference(const std::string & stats_path, const std::string & imatrix_path);
std::string imatrix_path_of(const std::string & stats_path, const StatsImatrix & ref);

// The imatrix `meta` (of the stats file `stats_path`) records, read and checked against the
// recorded hash; nullopt when it records none. Throws when the file is missing or not that one.
std::optional<Imatrix> recorded_imatrix(const std::string & stats_path, const StatsMeta & meta);

// `reap merge`: the imatrices of the runs in `stats_paths` (metas in the same order) added up.
// nullopt, with a warning naming the first run without one, when not every run has one (a sum
// over some of the runs would not match the merged statistics); throws when `required` (an
// explicit --imatrix-out) and not every run has one.
std::optional<Imatrix> merge_recorded_imatrices(const std::vector<std::string> & stats_paths,
                                                const std::vector<StatsMeta> & metas, bool required);

// The inputs of `merge_recorded_imatrices`: the files the runs record (for the output checks).
std::vector<std::string> recorded_imatrix_paths(const std::vector<std::string> & stats_paths,
                                                const std::vector<StatsMeta> &   metas);

}  // namespace reap
