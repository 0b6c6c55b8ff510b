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

ResumePoint resume_from_checkpoint(const std::string & path, const StatsMeta & meta, size_t n_samples,
                                   ExpertStats & stats) {
    ExpertStats prev;
    try {
        prev = ExpertStats::load(path);
    } catch (const Error & e) {
        fail("cannot resume: %s", e.what());
    }
    const StatsMeta & pm = prev.meta;
    check_same_model(meta, pm, path, SameModel::file, "the model being profiled");
    if (!pm.fingerprint || pm.fingerprint != meta.fingerprint) {
        fail("%s: checkpoint was made with other calibration data or options; cannot resume", path.c_str());
    }
    if (prev.layers.size() != stats.layers.size()) {
        fail("%s: checkpoint belongs to another model; cannot resume", path.c_str());
    }
    for (auto & [il, L] : prev.layers) {
        if (!stats.layers.count(il)) {
            fail("%s: checkpoint has layer %d, which is not a MoE layer of the model", path.c_str(), il);
        }
        stats.layers.at(il) = L;
    }
    stats.milestones = prev.milestones;  // those already passed; the rest are taken on the way
    ResumePoint at;
    at.samples_done = pm.progress ? size_t(pm.progress->samples_done) : 0;
    at.tokens_done  = pm.progress ? pm.progress->tokens_done : 0;
    at.imatrix      = pm.imatrix;
    at.merge_stats  = pm.merge_stats;
    if (at.samples_done > n_samples) {
        fail("%s: checkpoint says %zu samples done, but there are only %zu", path.c_str(), at.samples_done, n_samples);
    }
    log_info("resuming after %zu of %zu samples", at.samples_done, n_samples);
    return at;
}

void save_checkpoint(const std::string & path, const ExpertStats & stats, const StatsMeta & meta, size_t samples_done,
                     uint64_t tokens_done, bool complete) {
    ExpertStats out   = stats;
    out.meta          = meta;
    out.meta.date     = iso_utc_now();
    out.meta.samples  = samples_done;
    out.meta.tokens   = tokens_done;
    out.meta.progress = StatsProgress{samples_done, tokens_done, complete};
    out.save(path);
}

}  // namespace reap
