// The merge statistics of a layer (`profile --merge-stats`, LayerStats::router_gram and
// output_gram): how they merge across runs, their "merge" object in the stats file, and the
// similarities the merge planner reads from them (LayerStats::router_similarity,
// output_similarity, defined here). expert_stats.cpp calls these for the rest of the file.
#pragma once

#include "stats/expert_stats.h"

#include <nlohmann/json.hpp>

#include <string>

namespace reap {

// Adds `o`'s Grams to `into`'s when both have them; otherwise drops `into`'s (a Gram over only
// part of the tokens would pass for the whole). Runs of different N leave N 0 (mixed).
void merge_grams(LayerStats & into, const LayerStats & o);

// The layer's "merge" object (call only when L.has_merge_stats()).
nlohmann::json merge_stats_to_json(const LayerStats & L);

// Reads a layer's "merge" object strictly into `ls` (whose counts and total_tokens are read
// already): E x E finite Grams with non-negative diagonals, token counts within the layer's.
// Throws naming `origin` and layer `il`.
void merge_stats_from_json(const nlohmann::json & m, const std::string & origin, const std::string & il,
                           LayerStats & ls);

}  // namespace reap
