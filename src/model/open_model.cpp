#include "model/open_model.h"

#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "gguf/gguf_pruning_record.h"
#include "hf/hf_checkpoint.h"
#include "hf/hf_model.h"
#include "hf/hf_pruning_record.h"

namespace reap {

std::unique_ptr<Model> open_model(const std::string & path) {
    if (is_hf_folder(path)) return std::make_unique<HfModel>(path);
    return std::make_unique<GgufModel>(path);
}

std::optional<PruningRecord> read_pruning_record(const std::string & path) {
    if (is_hf_folder(path)) return read_hf_pruning_record(path);
    return read_pruning_record(GgufFile::open(path));
}

PruneOutcome run_prune(const PruneRequest & r) { return run_prune(r, *open_model(r.model)); }

}  // namespace reap
