#include "plan/model.h"

#include "core/error.h"

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

}  // namespace reap
