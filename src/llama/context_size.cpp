#include "llama/context_size.h"

#include "core/error.h"
#include "core/log.h"
#include "gguf/gguf_file.h"

#include <algorithm>

namespace reap {

uint32_t trained_context(const std::string & model) {
    const GgufFile f = GgufFile::open(model);
    const auto     n = f.get_uint(f.arch() + ".context_length");
    return n && *n <= uint64_t(INT32_MAX) ? uint32_t(*n) : 0;
}

int resolve_ctx_size(int requested, const std::string & model) {
    if (requested < 0 && requested != k_ctx_size_not_given) {
        fail_usage("-c/--ctx-size %d: give a number of tokens (0: the model's trained context)", requested);
    }
    const uint32_t trained = trained_context(model);
    if (requested == k_ctx_size_not_given) {
        return trained > 0 ? std::min(k_default_ctx_size, int(trained)) : k_default_ctx_size;
    }
    if (requested == 0) {
        if (trained == 0) fail("%s: no trained context length in the file; give -c", model.c_str());
        return int(trained);
    }
    if (trained > 0 && uint32_t(requested) > trained) {
        log_warn("-c %d exceeds the %u tokens %s was trained on: positions past them are outside what it learned",
                 requested, trained, model.c_str());
    }
    return requested;
}

}  // namespace reap
