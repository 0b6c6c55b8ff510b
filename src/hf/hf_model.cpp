#include "hf/hf_model.h"

#include "core/error.h"
#include "core/log.h"
#include "hf/hf_inspect.h"
#include "hf/hf_pruner.h"

namespace reap {

HfModel::HfModel(const std::string & dir) : c_(HfCheckpoint::open(dir)), layout_(analyze_hf(c_)) {}

std::vector<std::string> HfModel::input_paths() const {
    std::vector<std::string> inputs = {c_.dir, c_.config_path};  // any file inside the folder, and
    for (const auto & sh : c_.shards)                            // the shards where links lead
        inputs.push_back(sh.path());
    return inputs;
}

void HfModel::check_split(uint64_t split_max_bytes) const {
    if (split_max_bytes != 0) {
        fail("--split-max-size: a Hugging Face output is sharded like its input; the option is for GGUF");
    }
}

uint64_t HfModel::pruned_size(const Plan & plan, uint64_t) const { return hf_pruned_size(c_, layout_, plan); }

void HfModel::write_pruned(const std::vector<PruneJob> & jobs, bool show_progress) const {
    if (!c_.weights_outside_index.empty()) {
        std::string list;
        for (const auto & f : c_.weights_outside_index)
            list += (list.empty() ? "" : ", ") + f;
        log_warn(
            "%s: %zu weight file(s) besides the checkpoint's own are left out of the output (unpruned copies "
            "of the model): %s",
            c_.dir.c_str(), c_.weights_outside_index.size(), list.c_str());
    }
    prune_hf(c_, layout_, jobs, show_progress);
}

nlohmann::json HfModel::inspect_facts() const { return hf_inspect_facts(c_, layout_); }

}  // namespace reap
