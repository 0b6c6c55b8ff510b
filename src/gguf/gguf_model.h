// A GGUF model (one file or every split of a split model) behind the seam of plan/model.h:
// the reader (gguf_file, moe_layout), the writer (gguf_pruner) and the inspect facts
// (gguf_inspect) of one format.
#pragma once

#include "gguf/gguf_file.h"
#include "gguf/imatrix_file.h"
#include "gguf/moe_layout.h"
#include "plan/model.h"

#include <map>
#include <optional>

namespace reap {

class GgufModel final : public Model {
public:
    // Opens `path` (any split opens all of them) and analyses its MoE structure; throws reap::Error.
    explicit GgufModel(const std::string & path);

    const GgufFile &  file() const { return file_; }
    const MoeLayout & layout() const { return layout_; }

    const MoeShape &         shape() const override;  // model_shape(): read once, when first asked
    uint64_t                 size() const override { return layout_.file_size; }
    std::vector<std::string> input_paths() const override { return file_.split_paths(); }
    void                     check_split(uint64_t) const override {}
    uint64_t                 pruned_size(const Plan & plan, uint64_t split_max_bytes) const override;
    std::vector<std::string> output_files(const PruneJob & job) const override;
    void                     write_pruned(const std::vector<PruneJob> & jobs, bool show_progress) const override;
    nlohmann::json           inspect_facts() const override;
    void                     check_imatrix(const std::string & path) const override;
    ExpertStats              imatrix_stats(const std::string & path) const override;

private:
    const Imatrix & imatrix(const std::string & path) const;  // read and checked once per path

    GgufFile                               file_;
    MoeLayout                              layout_;  // points into file_'s tensors
    mutable std::optional<MoeShape>        shape_;
    mutable std::map<std::string, Imatrix> imatrices_;
};

}  // namespace reap
