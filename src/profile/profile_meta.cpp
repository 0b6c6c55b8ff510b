#include "profile/profile_meta.h"

#include "core/error.h"
#include "core/fs_util.h"

namespace reap {

using nlohmann::json;

StatsMeta profile_meta(const ProfileOptions & opts, const MoeShape & shape, uint64_t model_size, uint64_t fingerprint,
                       const MoeCollector * collector, const TokenizedSamples & samples,
                       const std::vector<CalibFileReport> & report) {
    StatsMeta meta   = StatsMeta::for_model(shape, opts.model, model_size);
    meta.tool        = std::string("reap.cpp ") + REAP_VERSION;
    meta.fingerprint = strfmt("%016llx", (unsigned long long) fingerprint);
    meta.options     = {{"ctx_size", opts.n_ctx},       {"batch_size", opts.n_batch}, {"ubatch_size", opts.n_ubatch},
                        {"format", opts.format},        {"seed", opts.seed},          {"max_samples", opts.max_samples},
                        {"max_tokens", opts.max_tokens}};
    if (collector != nullptr) {
        bool before = false;
        for (int il : shape.moe_layers)
            before = before || collector->gate_before_expert(il);
        meta.gate_applied_before_expert = before;
    }
    json files = json::array();
    for (size_t f = 0; f < opts.data.size(); f++) {
        files.push_back({{"file", opts.data[f]},
                         {"samples", samples.samples_of_file(f)},
                         {"tokens", samples.tokens_of_file(f)},
                         {"skipped_lines", report[f].skipped}});
    }
    meta.calibration = files;
    if (opts.merge_stats > 0 && opts.collect) meta.merge_stats = opts.merge_stats;
    return meta;
}

}  // namespace reap
