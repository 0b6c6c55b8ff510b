// Whether a generated continuation has fallen into a loop (`reap eval --prompts`, the
// degeneration rate). The definition, also in README and `reap eval --help`:
//   a continuation of L tokens (an end-of-generation token not counted) loops when L >= 16 and
//   its last half (the tail, ceil(L/2) tokens) repeats with a short period: for some period p,
//   1 <= p <= tail/2, at least 90 % of the tail's tokens equal the token p positions before.
// So the tail is mostly one n-gram (n = p) said at least twice over, which is what a pruned model
// stuck in "}\n}\n}\n" or "the the the" produces; a tail shorter than 8 tokens is too short to call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reap {

constexpr size_t k_loop_min_tokens  = 16;  // shorter continuations never count as loops
constexpr size_t k_loop_min_percent = 90;  // share of the tail the repetition must cover

// The shortest period p with which the tail repeats (see above), or 0 when it does not loop.
size_t      loop_period(const std::vector<int32_t> & tokens);
inline bool falls_into_loop(const std::vector<int32_t> & tokens) { return loop_period(tokens) != 0; }

}  // namespace reap
