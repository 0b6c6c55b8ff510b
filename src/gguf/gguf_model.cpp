#include "gguf/gguf_model.h"

#include "core/fs_util.h"
#include "gguf/gguf_inspect.h"
#include "gguf/gguf_pruner.h"
#include "gguf/imatrix_prune.h"
#include "gguf/router_fingerprint.h"

namespace reap {

GgufModel::GgufModel(const std::string & path) : file_(GgufFile::open(path)), layout_(analyze_moe(file_)) {}

const MoeShape & GgufModel::shape() const {
    if (!shape_) shape_ = model_shape(file_, layout_);
    return *shape_;
}

uint64_t GgufModel::pruned_size(const Plan & plan, uint64_t split_max_bytes) const {
    return pruned_file_size(file_, layout_, plan, split_max_bytes);
}

std::vector<std::string> GgufModel::output_files(const PruneJob & job) const {
    return pruned_file_names(file_, layout_, job);
}

void GgufModel::write_pruned(const std::vector<PruneJob> & jobs, bool show_progress) const {
    // The importance matrices first (small, in memory), each to its temporary: a bad path fails
    // before the long copy, and each appears with its model or not at all.
    std::vector<std::string> outputs, inputs = file_.split_paths();
    for (const auto & j : jobs) {
        const auto names = output_files(j);
        outputs.insert(outputs.end(), names.begin(), names.end());
        outputs.push_back(j.imatrix_out);
        inputs.push_back(j.imatrix);
    }
    refuse_clashing_outputs(outputs, inputs);
    std::vector<std::unique_ptr<PendingImatrix>> pending;
    std::vector<GgufFileWriter *>                also;
    for (const auto & j : jobs) {
        if (j.imatrix_out.empty()) continue;
        check_plan(j.plan, shape(), j.output);
        pending.push_back(
            std::make_unique<PendingImatrix>(j.imatrix_out, prune_imatrix(imatrix(j.imatrix), layout_, j.plan)));
        also.push_back(&pending.back()->file());
    }
    prune_model(file_, layout_, jobs, show_progress, also);
}

const Imatrix & GgufModel::imatrix(const std::string & path) const {
    auto it = imatrices_.find(path);
    if (it == imatrices_.end()) {
        Imatrix m = read_imatrix(path);
        check_imatrix_for_model(m, path, file_, layout_);
        it = imatrices_.emplace(path, std::move(m)).first;
    }
    return it->second;
}

void GgufModel::check_imatrix(const std::string & path) const { imatrix(path); }

ExpertStats GgufModel::imatrix_stats(const std::string & path) const {
    return imatrix_expert_stats(imatrix(path), path, file_, layout_);
}

nlohmann::json GgufModel::inspect_facts() const { return gguf_inspect_facts(file_, layout_); }

}  // namespace reap
