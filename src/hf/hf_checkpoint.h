// A Hugging Face model folder: config.json, the weights as one model.safetensors or as shards
// listed by model.safetensors.index.json, and any other files (tokenizer, generation config, ...).
// Only headers are read at open; every shard the index names must exist and hold exactly the
// tensors the index gives it.
#pragma once

#include "hf/safetensors.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

inline constexpr const char * k_hf_index_name  = "model.safetensors.index.json";
inline constexpr const char * k_hf_single_name = "model.safetensors";

struct HfTensor {
    const StTensor * t;
    size_t           shard;  // index into HfCheckpoint::shards
};

class HfCheckpoint {
public:
    // Opens the folder `dir`; throws reap::Error naming the file at fault.
    static HfCheckpoint open(const std::string & dir);

    std::string                  dir;
    std::string                  config_path;
    nlohmann::json               config;
    std::string                  config_text;  // as read, for a key-order-preserving rewrite
    bool                         sharded = false;
    nlohmann::json               index;        // the index file (null when not sharded)
    std::vector<SafetensorsFile> shards;       // in file-name order
    std::vector<std::string>     shard_names;  // base names, as in the index
    std::vector<HfTensor>        tensors;      // shard by shard, in data order
    // Other weight files anywhere in the folder, relative paths in order (original/model.safetensors
    // and metal/model.bin of gpt-oss repos, consolidated.safetensors of Mistral's, their indexes):
    // unpruned copies of the model that a pruned folder must not carry.
    std::vector<std::string> weights_outside_index;

    const HfTensor * find(const std::string & name) const;
    uint64_t         weights_size() const;  // bytes of all shard files
    // The checkpoint's own weight files (index included): not copied as "other files".
    bool is_weight_file(const std::string & base) const;
};

// Whether a file of this name holds model weights in some format (safetensors, PyTorch, GGUF,
// TensorFlow, Flax, ONNX, ...) or indexes them.
bool is_weight_file_name(const std::string & name);

// True when `path` is a directory (a Hugging Face folder, as opposed to a GGUF file).
bool is_hf_folder(const std::string & path);

// "model-00002-of-00005.safetensors"
std::string hf_shard_name(size_t k, size_t n);

}  // namespace reap
