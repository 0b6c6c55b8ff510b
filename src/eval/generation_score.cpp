#include "eval/generation_score.h"

#include "core/error.h"
#include "eval/degeneration.h"

#include <algorithm>
#include <set>
#include <utility>

namespace reap {

namespace {

// The continuation with its end of generation as one more token (-1, never a vocabulary id).
std::vector<int32_t> with_end(const Continuation & c) {
    std::vector<int32_t> t = c.tokens;
    if (c.ended) t.push_back(-1);
    return t;
}

}  // namespace

double distinct_bigrams(const std::vector<Continuation> & continuations) {
    std::set<std::pair<int32_t, int32_t>> distinct;
    size_t                                total = 0;
    for (const auto & c : continuations) {
        for (size_t i = 1; i < c.tokens.size(); i++) {
            distinct.insert({c.tokens[i - 1], c.tokens[i]});
            total++;
        }
    }
    return total == 0 ? 0.0 : double(distinct.size()) / double(total);
}

GenerationScore score_continuations(const std::vector<Continuation> & base, const std::vector<Continuation> & model) {
    if (base.size() != model.size() || base.empty()) {
        fail("internal: %zu continuations to compare with %zu of the base", model.size(), base.size());
    }
    GenerationScore s;
    s.n_prompts       = base.size();
    double   fraction = 0, prefix_tokens = 0;
    uint64_t matches = 0, positions = 0;
    size_t   loops = 0;
    for (size_t k = 0; k < base.size(); k++) {
        const auto   b      = with_end(base[k]);
        const auto   m      = with_end(model[k]);
        const size_t common = std::min(b.size(), m.size());
        size_t       prefix = 0;
        while (prefix < common && b[prefix] == m[prefix])
            prefix++;
        for (size_t i = 0; i < common; i++)
            matches += b[i] == m[i] ? 1 : 0;
        positions += std::max(b.size(), m.size());
        prefix_tokens += double(prefix);
        // b is never empty: a continuation holds a token or its end
        fraction += b.empty() ? 1.0 : double(prefix) / double(b.size());
        loops += falls_into_loop(model[k].tokens) ? 1 : 0;
    }
    const double n     = double(base.size());
    s.agreement        = fraction / n;
    s.agreement_tokens = prefix_tokens / n;
    s.match_rate       = positions == 0 ? 1.0 : double(matches) / double(positions);
    s.degeneration     = double(loops) / n;
    s.distinct2        = distinct_bigrams(model);
    return s;
}

}  // namespace reap
