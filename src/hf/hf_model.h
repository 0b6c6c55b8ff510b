// A Hugging Face folder behind the seam of plan/model.h: the reader (hf_checkpoint, hf_layout),
// the writer (hf_pruner) and the inspect facts (hf_inspect) of one format. The plans come from
// the same code as for GGUF (prune/prune_request.h on this MoeShape), so the same stats give the
// same experts in either format.
#pragma once

#include "hf/hf_checkpoint.h"
#include "hf/hf_layout.h"
#include "plan/model.h"

namespace reap {

class HfModel final : public Model {
public:
    // Opens the folder `dir` and analyses its expert tensors; throws reap::Error.
    explicit HfModel(const std::string & dir);

    const HfCheckpoint & checkpoint() const { return c_; }
    const HfLayout &     layout() const { return layout_; }

    const MoeShape &         shape() const override { return layout_.shape; }
    uint64_t                 size() const override { return c_.weights_size(); }
    std::vector<std::string> input_paths() const override;
    void                     check_split(uint64_t split_max_bytes) const override;
    uint64_t                 pruned_size(const Plan & plan, uint64_t split_max_bytes) const override;
    std::vector<std::string> output_files(const PruneJob & job) const override { return {job.output}; }
    void                     write_pruned(const std::vector<PruneJob> & jobs, bool show_progress) const override;
    nlohmann::json           inspect_facts() const override;

private:
    HfCheckpoint c_;
    HfLayout     layout_;
};

}  // namespace reap
