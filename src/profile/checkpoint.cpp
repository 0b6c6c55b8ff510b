#include "profile/checkpoint.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/hash.h"
#include "core/log.h"

namespace reap {

using nlohmann::json;

uint64_t calibration_fingerprint(const std::vector<std::vector<llama_token>> & sequences) {
    Fnv1a h;
    for (const auto & seq : sequences) {
        for (llama_token t : seq) {
            h.u32_le(uint32_t(t));
        }
        h.byte(0xfe);
    }
    return h.h;
}

void check_checkpoint_model(const json & checkpoint, const json & meta, const std::string & path) {
    // Compared where the checkpoint records them (older ones have no model_size).
    for (const char * key : {"architecture", "model", "model_size"}) {
        if (checkpoint.contains(key) && meta.contains(key) && checkpoint[key] != meta[key]) {
            fail("%s: checkpoint belongs to another model (%s %s, this run %s); cannot resume", path.c_str(), key,
                 checkpoint[key].dump().c_str(), meta[key].dump().c_str());
        }
    }
}

ResumePoint resume_from_checkpoint(const std::string & path, const json & meta, uint32_t n_expert, size_t n_samples,
                                   ExpertStats & stats) {
    ExpertStats prev;
    try {
        prev = ExpertStats::load(path);
    } catch (const Error & e) {
        fail("cannot resume: %s", e.what());
    }
    const json & pm = prev.meta;
    if (!pm.contains("fingerprint") || pm["fingerprint"] != meta["fingerprint"]) {
        fail("%s: checkpoint was made with other calibration data or options; cannot resume", path.c_str());
    }
    check_checkpoint_model(pm, meta, path);
    if (pm.value("n_expert", 0u) != n_expert || prev.layers.size() != stats.layers.size()) {
        fail("%s: checkpoint belongs to another model; cannot resume", path.c_str());
    }
    for (auto & [il, L] : prev.layers) {
        if (!stats.layers.count(il)) {
            fail("%s: checkpoint has layer %d, which is not a MoE layer of the model", path.c_str(), il);
        }
        stats.layers.at(il) = L;
    }
    ResumePoint at;
    at.samples_done = pm.value("progress", json::object()).value("samples_done", size_t(0));
    at.tokens_done  = pm.value("progress", json::object()).value("tokens_done", uint64_t(0));
    if (at.samples_done > n_samples) {
        fail("%s: checkpoint says %zu samples done, but there are only %zu", path.c_str(), at.samples_done, n_samples);
    }
    log_info("resuming after %zu of %zu samples", at.samples_done, n_samples);
    return at;
}

void save_checkpoint(const std::string & path, const ExpertStats & stats, const json & meta, size_t samples_done,
                     uint64_t tokens_done, bool complete) {
    ExpertStats out      = stats;
    out.meta             = meta;
    out.meta["date"]     = iso_utc_now();
    out.meta["samples"]  = samples_done;
    out.meta["tokens"]   = tokens_done;
    out.meta["progress"] = {{"samples_done", samples_done}, {"tokens_done", tokens_done}, {"complete", complete}};
    out.save(path);
}

}  // namespace reap
