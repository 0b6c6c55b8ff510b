// The stats file reader (what prune, report and merge load), round trip and self-merge.
#include "core/error.h"
#include "fuzz_input.h"
#include "stats/expert_stats.h"
#include "stats/stats_merge.h"
#include "stats/stats_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string path = reap::fuzz::write_input("stats.json", data, size);
    try {
        reap::ExpertStats s = reap::ExpertStats::load(path);
        (void) s.to_json().dump();
        reap::ExpertStats t = s;
        t.merge(s, path);
        // The same-model checks and the meta merge read every typed "_meta" field.
        reap::check_stats_match(s, s.shape(), path);
        reap::check_same_model(s.meta, t.meta, path);
        (void) reap::merge_metas({s.meta, t.meta}, {path, path}).to_json().dump();
    } catch (const reap::Error &) {}
    return 0;
}
