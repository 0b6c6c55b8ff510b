// How the profiler packs sequences into llama_decode calls. Packing changes speed only: each
// sequence is its own llama.cpp sequence, so the statistics are those of one sample per call.
#pragma once

#include "llama.h"

#include <cstddef>
#include <vector>

namespace reap {

// Tokens [from, from + len) of one sequence, decoded at positions from...
struct TokenRange {
    const std::vector<llama_token> * tokens;
    size_t                           from, len;
};

// One llama_decode call: its ranges, each its own sequence (seq id = index).
using DecodeCall = std::vector<TokenRange>;

struct BatchStep {
    std::vector<DecodeCall> calls;  // decoded in order, the memory cleared after the last
    size_t                  next;   // the first sequence after this step
};

// The next step from sequence `first`: as many whole sequences as fit in n_batch tokens (at
// most n_parallel), or one sequence alone in n_batch-sized pieces when it is longer than
// n_batch or n_parallel is 1.
BatchStep plan_next_batch(const std::vector<std::vector<llama_token>> & sequences, size_t first, int n_parallel,
                          int n_batch);

}  // namespace reap
