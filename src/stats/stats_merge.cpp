#include "stats/stats_merge.h"

#include "core/error.h"
#include "core/fs_util.h"

namespace reap {

namespace {

// The same file twice, or a copy of the same run (the fingerprint covers the tokenized data and
// the options, so on one model equal fingerprints mean equal runs), would count every token twice.
void check_not_twice(const std::vector<std::string> & paths, const std::vector<ExpertStats> & runs, size_t i) {
    for (size_t k = 0; k < i; k++) {
        if (paths[k] == paths[i] || same_file(paths[k], paths[i])) {
            fail("%s: given twice (also as %s): its tokens would count twice", paths[i].c_str(), paths[k].c_str());
        }
    }
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

}  // namespace

ExpertStats merge_stats_files(const std::vector<std::string> & paths) {
    if (paths.size() < 2) fail("merge needs at least two stats files");
    std::vector<ExpertStats> runs;
    std::vector<StatsMeta>   metas;
    for (size_t i = 0; i < paths.size(); i++) {
        runs.push_back(ExpertStats::load(paths[i]));
        check_not_twice(paths, runs, i);
        metas.push_back(runs[i].meta);
    }
    ExpertStats all = runs[0];
    for (size_t i = 1; i < runs.size(); i++)
        all.merge(runs[i], paths[i]);
    all.meta = merge_metas(metas, paths);
    return all;
}

}  // namespace reap
