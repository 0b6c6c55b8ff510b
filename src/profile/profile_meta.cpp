#include "profile/profile_meta.h"

#include "core/error.h"
#include "core/fs_util.h"

namespace reap {

using nlohmann::json;

json profile_meta(const ProfileOptions & opts, const ModelFiles & model, const MoeLayout & layout, const std::vector<int> & moe_layers,
                  uint64_t fingerprint, const MoeCollector * collector, const TokenizedSamples & samples,
                  const std::vector<CalibFileReport> & report) {
    json meta = {{"tool", std::string("reap.cpp ") + REAP_VERSION},
                 {"model", base_name(model.first())},
                 {"model_path", opts.model},
                 {"model_size", model.size},
                 {"architecture", layout.arch},
                 {"n_layer", layout.n_layer},
                 {"n_expert", layout.n_expert},
                 {"n_expert_used", layout.max_expert_used()},
                 {"moe_layers", moe_layers},
                 {"fingerprint", strfmt("%016llx", (unsigned long long) fingerprint)},
                 {"options", {{"ctx_size", opts.n_ctx}, {"batch_size", opts.n_batch}, {"ubatch_size", opts.n_ubatch},
                              {"format", opts.format}, {"seed", opts.seed}, {"max_samples", opts.max_samples},
                              {"max_tokens", opts.max_tokens}}}};
    if (collector != nullptr) {
        bool before = false;
        for (int il : moe_layers) before = before || collector->gate_before_expert(il);
        meta["gate_applied_before_expert"] = before;
    }
    json files = json::array();
    for (size_t f = 0; f < opts.data.size(); f++) {
        files.push_back({{"file", opts.data[f]},
                         {"samples", samples.samples_of_file(f)},
                         {"tokens", samples.tokens_of_file(f)},
                         {"skipped_lines", report[f].skipped}});
    }
    meta["calibration"] = files;
    return meta;
}

}  // namespace reap
