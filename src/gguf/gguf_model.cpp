#include "gguf/gguf_model.h"

#include "gguf/gguf_inspect.h"
#include "gguf/gguf_pruner.h"
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
    prune_model(file_, layout_, jobs, show_progress);
}

nlohmann::json GgufModel::inspect_facts() const { return gguf_inspect_facts(file_, layout_); }

}  // namespace reap
