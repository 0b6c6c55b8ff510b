#include "eval/degeneration.h"

namespace reap {

size_t loop_period(const std::vector<int32_t> & tokens) {
    const size_t n = tokens.size();
    if (n < k_loop_min_tokens) return 0;
    const size_t tail  = n - n / 2;  // ceil(n / 2)
    const size_t start = n - tail;   // >= tail / 2 >= p: every compared position exists
    for (size_t p = 1; p <= tail / 2; p++) {
        size_t same = 0;
        for (size_t i = start; i < n; i++)
            same += tokens[i] == tokens[i - p] ? 1 : 0;
        if (same * 100 >= k_loop_min_percent * tail) return p;
    }
    return 0;
}

}  // namespace reap
