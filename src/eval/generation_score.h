// How a model's greedy continuations compare with the base model's on the same prompts
// (`reap eval --prompts`): agreement, token match rate, degeneration rate, distinct-2.
// Pure functions over token ids, so the definitions are tested on crafted sequences.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// One greedy continuation: the tokens generated (at most --gen-tokens), without the
// end-of-generation token; `ended` when the model produced one (it then stopped).
struct Continuation {
    std::vector<int32_t> tokens;
    bool                 ended = false;
};

// A continuation shown beside the base's in the text table (and in JSON): readable text.
struct ContinuationExample {
    std::string prompt;  // the prompt's last characters
    std::string text;    // the continuation
};

struct GenerationScore {
    // Mean over prompts of (tokens common to the start of both continuations) / (length of the
    // base's continuation): 1 when every continuation is the base's. The end of generation
    // counts as one more token, so stopping where the base stops agrees and stopping elsewhere
    // does not.
    double agreement        = 0;
    double agreement_tokens = 0;  // the same mean common prefix, in tokens
    // Positions where both continuations hold the same token, over all positions of the longer
    // of the two (the end of generation again a token), pooled over prompts.
    double match_rate   = 0;
    double degeneration = 0;  // share of continuations that fall into a loop (eval/degeneration.h)
    // Distinct bigrams / bigrams, pooled over the model's continuations (bigrams within one
    // continuation; 0 when there are none).
    double                           distinct2 = 0;
    size_t                           n_prompts = 0;
    int                              n_tokens  = 0;  // --gen-tokens
    std::vector<ContinuationExample> examples;       // the first few prompts
};

// Scores `model`'s continuations against `base`'s, prompt by prompt (same order and count).
// `examples` and `n_tokens` are left for the caller.
GenerationScore score_continuations(const std::vector<Continuation> & base, const std::vector<Continuation> & model);

// Distinct bigrams / bigrams over `continuations` (0 when none has two tokens).
double distinct_bigrams(const std::vector<Continuation> & continuations);

}  // namespace reap
