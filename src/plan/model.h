// The seam between the format-free stages and the two model formats. A GGUF file
// (gguf/gguf_model.h) and a Hugging Face folder (hf/hf_model.h) each give the same small
// interface: what the model is (MoeShape), what it weighs, the size a plan gives, its inspect
// facts, and its pruned outputs written for a set of jobs. model/open_model.h decides which one
// a path is, once, for every command; prune/prune_request.h and prune/model_report.h are written
// once against this interface.
#pragma once

#include "moe/moe_shape.h"
#include "plan/plan.h"
#include "stats/expert_stats.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// One pruned output: the plan and where it goes.
struct PruneJob {
    Plan        plan;
    std::string output;
    uint64_t    split_max_bytes = 0;  // GGUF, > 0: "<output minus .gguf>-0000k-of-0000n.gguf" files
                                      // holding at most this much tensor data each (at least one tensor)
    // --imatrix (GGUF only): llama.cpp's importance matrix of the input, and where the pruned
    // model's goes (one file, whatever the splits), committed with the model. Both empty: none.
    std::string imatrix{}, imatrix_out{};
};

class Model {
public:
    virtual ~Model() = default;

    // Routed-expert shape with the router identity (fingerprint, row norms) the same-model checks use.
    virtual const MoeShape & shape() const = 0;
    // Bytes of the model's weight files: all GGUF splits, or an HF folder's shards with their headers.
    virtual uint64_t size() const = 0;
    // What the model is read from (files, folders): no output may be one of these or lie inside one.
    virtual std::vector<std::string> input_paths() const = 0;
    // Refuses (a usage error) a --split-max-size the format cannot honour.
    virtual void check_split(uint64_t split_max_bytes) const = 0;

    // The one owner of "size after pruning" for the format: exact bytes of the weight files `plan`
    // gives (every split, every header and its padding, the provenance keys), as written.
    virtual uint64_t pruned_size(const Plan & plan, uint64_t split_max_bytes) const = 0;
    // The files (or folder) a job writes.
    virtual std::vector<std::string> output_files(const PruneJob & job) const = 0;
    // Writes every job's output in one pass over the input; nothing under a final name on failure.
    virtual void write_pruned(const std::vector<PruneJob> & jobs, bool show_progress) const = 0;

    // --imatrix: reads llama.cpp's importance matrix at `path` and refuses one of another model
    // (entry names, widths, expert counts), naming the file; before anything is written. A format
    // without one (a Hugging Face folder) refuses it: the default.
    virtual void check_imatrix(const std::string & path) const;
    // The statistics the imatrix criteria rank by (stats/criteria.h, LayerStats::imatrix_sum), from
    // the importance matrix at `path` (checked as check_imatrix does) and the model's weights.
    virtual ExpertStats imatrix_stats(const std::string & path) const;

    // What `reap inspect` reports about the model, without the sizes after pruning.
    virtual nlohmann::json inspect_facts() const = 0;
};

}  // namespace reap
