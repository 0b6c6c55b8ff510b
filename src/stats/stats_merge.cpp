#include "stats/stats_merge.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "core/text.h"

#include <set>

namespace reap {

namespace {

// A copy of the same run (the fingerprint covers the tokenized data and the options, so on one
// model equal fingerprints mean equal runs) would count every token twice, as the same file
// twice would (refused before loading: refuse_input_given_twice).
void check_not_twice(const std::vector<std::string> & paths, const std::vector<ExpertStats> & runs, size_t i) {
    if (i > 0) check_same_model(runs[0].meta, runs[i].meta, paths[i]);
    for (size_t k = 0; k < i; k++) {
        const StatsMeta & a = runs[k].meta;
        const StatsMeta & b = runs[i].meta;
        if (a.fingerprint && b.fingerprint && *a.fingerprint == *b.fingerprint && a.calibration == b.calibration) {
            fail(
                "%s: the same calibration run as %s (same data, options and fingerprint): its tokens would count twice",
                paths[i].c_str(), paths[k].c_str());
        }
    }
}

// Shards of `reap profile --shard i/N`: all inputs are shards of one sharding of the same data,
// or none is; no shard twice. Returns the shards the result covers (none when all N are there:
// the result is the whole run); says which are missing.
std::optional<StatsShard> merge_shards(const std::vector<StatsMeta> & metas, const std::vector<std::string> & paths) {
    const std::optional<StatsShard> & first = metas[0].shard;
    std::set<uint32_t>                have;
    for (size_t i = 0; i < metas.size(); i++) {
        const std::optional<StatsShard> & s = metas[i].shard;
        if (s.has_value() != first.has_value()) {
            const size_t k = first ? i : 0;
            fail("%s: not a shard of a sharded run, but %s is; merge the shards of one run first, then the results",
                 paths[k].c_str(), paths[k == 0 ? i : 0].c_str());
        }
        if (!s) continue;
        if (s->count != first->count || s->data != first->data) {
            fail("%s: a shard of another sharding or other data (%zu shards of data %s) than %s (%u shards of data %s)",
                 paths[i].c_str(), size_t(s->count), s->data.c_str(), paths[0].c_str(), first->count,
                 first->data.c_str());
        }
        for (uint32_t idx : s->indices) {
            if (!have.insert(idx).second) {
                fail("%s: shard %u/%u is also in an earlier input: its tokens would count twice", paths[i].c_str(), idx,
                     s->count);
            }
        }
    }
    if (!first) return std::nullopt;
    StatsShard out{first->count, std::vector<uint32_t>(have.begin(), have.end()), first->data};
    if (out.indices.size() == first->count) return std::nullopt;
    std::vector<uint32_t> missing;
    for (uint32_t i = 1; i <= first->count; i++)
        if (!have.count(i)) missing.push_back(i);
    log_warn("shards %s of %u are missing: the result covers %zu of %u shards (merge it with the rest later)",
             id_ranges(missing).c_str(), first->count, out.indices.size(), first->count);
    return out;
}

}  // namespace

std::vector<ExpertStats> load_same_model_stats(const std::vector<std::string> & paths) {
    refuse_input_given_twice(paths);
    std::vector<ExpertStats> runs;
    for (size_t i = 0; i < paths.size(); i++) {
        runs.push_back(ExpertStats::load(paths[i]));
        check_not_twice(paths, runs, i);
    }
    return runs;
}

ExpertStats merge_stats_files(const std::vector<std::string> & paths) {
    if (paths.size() < 2) fail("merge needs at least two stats files");
    const std::vector<ExpertStats> runs = load_same_model_stats(paths);
    std::vector<StatsMeta>         metas;
    for (const auto & r : runs)
        metas.push_back(r.meta);
    const std::optional<StatsShard> shard = merge_shards(metas, paths);
    ExpertStats                     all   = runs[0];
    for (size_t i = 1; i < runs.size(); i++)
        all.merge(runs[i], paths[i]);
    all.meta       = merge_metas(metas, paths);
    all.meta.shard = shard;
    return all;
}

StatsMeta merge_metas(const std::vector<StatsMeta> & metas, const std::vector<std::string> & paths) {
    StatsMeta out   = metas.at(0);
    out.calibration = nlohmann::json::array();
    out.fingerprint.reset();  // a merged file is not a checkpoint to resume
    out.imatrix.reset();      // reap merge records the merged imatrix when it writes one
    out.progress.reset();
    out.samples.reset();
    out.tokens.reset();
    StatsProgress progress{0, 0, true};
    for (const auto & m : metas) {
        if (m.calibration.is_array()) {
            for (const auto & c : m.calibration)
                out.calibration.push_back(c);
        }
        // Merge Grams survive only when every run has them (LayerStats::merge); N when all agree.
        if (!m.merge_stats) {
            out.merge_stats.reset();
        } else if (out.merge_stats && *out.merge_stats != *m.merge_stats) {
            out.merge_stats = 0u;
        }
        if (m.samples) out.samples = out.samples.value_or(0) + *m.samples;
        if (m.tokens) out.tokens = out.tokens.value_or(0) + *m.tokens;
        const StatsProgress p = m.progress.value_or(StatsProgress{m.samples.value_or(0), m.tokens.value_or(0), true});
        progress.samples_done += p.samples_done;
        progress.tokens_done += p.tokens_done;
        progress.complete = progress.complete && p.complete;
    }
    // An unfinished input stays visible: the result is as unfinished as its least finished part.
    if (!progress.complete) out.progress = progress;
    out.merged_from = paths;
    out.date        = iso_utc_now();
    out.tool        = std::string("reap.cpp ") + REAP_VERSION;
    return out;
}

}  // namespace reap
