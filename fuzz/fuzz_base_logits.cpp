// The base-logits file of `reap eval` (an untrusted file a user may pass with --base-logits):
// header, tokens and every row are read as eval reads them.
#include "core/error.h"
#include "eval/base_logits.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string path = reap::fuzz::write_input("base.logits", data, size);
    try {
        reap::BaseLogitsReader r(path, 64, 0);  // the seeds were made with -c 64, every position scored
        reap::BaseRow          row;
        for (const auto & w : r.windows()) {
            for (size_t i = 0; i + 1 < w.size(); i++) {
                r.read_row(row, w[i + 1]);
            }
        }
    } catch (const reap::Error &) {}
    return 0;
}
