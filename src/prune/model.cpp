#include "prune/model.h"

#include "core/error.h"
#include "moe/inspect.h"

namespace reap {

void Model::check_imatrix(const std::string & path) const {
    fail(
        "%s: an importance matrix is llama.cpp's, for a GGUF model; this model's format has none to prune "
        "(--imatrix is for GGUF inputs)",
        path.c_str());
}

ExpertStats Model::imatrix_stats(const std::string & path) const {
    check_imatrix(path);
    fail("%s: the imatrix criteria need a GGUF model", path.c_str());
}

nlohmann::json model_report(const Model & m) {
    nlohmann::json r = m.inspect_facts();
    r["pruned_sizes"] =
        pruned_sizes_json(m.shape(), [&](uint32_t kept) { return m.pruned_size(uniform_plan(m.shape(), kept), 0); });
    return r;
}

}  // namespace reap
