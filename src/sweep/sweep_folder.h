// A sweep's output folder: who may write it and what it belongs to.
//
// One writer at a time (core/output_lock.h: a second sweep into the same folder is refused while
// the first runs). A sweep writes only into a folder that is new, empty, or its own: the first
// thing it writes there is OUTDIR/.reap-sweep.json, the sweep's identity, and only a folder that
// holds that file is continued, with --resume and the same identity. A folder with anything else
// in it (a user's stats.json, another tool's files) is refused before any work, so nothing of the
// user's is ever overwritten.
#pragma once

#include "core/output_lock.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

// What a sweep is: the files' names for the reader, and their content (gguf/content_id.h for the
// model, the bytes of the statistics, calibration and importance-matrix files, in order) and the
// quant types for same_sweep.
nlohmann::json sweep_identity(const std::string & model, const std::vector<std::string> & calib,
                              const std::vector<std::string> & stats, const std::vector<std::string> & quant = {},
                              const std::string & imatrix = "");

// Whether two identities are one sweep: by content only, so the same files copied or renamed
// are the same sweep, and another fine-tune of the same name and size, or edited statistics,
// are not; and the same quant types (a record without them: none).
bool same_sweep(const nlohmann::json & a, const nlohmann::json & b);

class SweepFolder {
public:
    // Creates `dir` when missing, takes its lock, and checks it: empty (then records `identity`),
    // or this sweep's own folder and `resume`. Throws reap::Error naming the folder otherwise.
    SweepFolder(const std::string & dir, const nlohmann::json & identity, bool resume);

    bool resumed() const { return resumed_; }  // continuing a sweep that this folder records

private:
    OutputLock lock_;
    bool       resumed_ = false;
};

}  // namespace reap
