#include "profile/batch_plan.h"

#include <algorithm>

namespace reap {

BatchStep plan_next_batch(const std::vector<std::vector<llama_token>> & sequences, size_t first, int n_parallel,
                          int n_batch) {
    const size_t                     batch = size_t(n_batch);
    const std::vector<llama_token> & head  = sequences[first];
    BatchStep                        step;
    if (head.size() > batch || n_parallel == 1) {
        // One sample alone, in n_batch-sized pieces that continue the sequence.
        for (size_t from = 0; from < head.size(); from += batch) {
            step.calls.push_back({{&head, from, std::min(batch, head.size() - from)}});
        }
        step.next = first + 1;
        return step;
    }
    // Whole samples, as many as fit in one batch, each its own sequence.
    DecodeCall call;
    size_t     n_tok = 0;
    step.next        = first;
    while (step.next < sequences.size() && int(call.size()) < n_parallel &&
           n_tok + sequences[step.next].size() <= batch) {
        call.push_back({&sequences[step.next], 0, sequences[step.next].size()});
        n_tok += sequences[step.next].size();
        step.next++;
    }
    step.calls.push_back(std::move(call));
    return step;
}

}  // namespace reap
