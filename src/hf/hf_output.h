// The output folder of an HF prune: made as a hidden temporary folder beside the final name,
// filled, and renamed into place; removed on any failure, so no partial folder is ever left
// under the final name.
#pragma once

#include "hf/hf_checkpoint.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

// Refuses an output folder that is the input (`input`: a folder or file), lies inside it, or
// already exists and is not empty; what HfOutputFolder checks, for callers that check every
// output before writing anything.
void check_hf_output_folder(const std::string & final_dir, const std::string & input);

class HfOutputFolder {
public:
    // Refuses an output that is the input (`input`: a folder or file), lies inside it, or already
    // exists (an empty folder is replaced).
    HfOutputFolder(const std::string & final_dir, const std::string & input);
    ~HfOutputFolder();
    HfOutputFolder(const HfOutputFolder &)             = delete;
    HfOutputFolder & operator=(const HfOutputFolder &) = delete;

    const std::string & tmp() const { return tmp_; }
    std::string         file(const std::string & base) const;  // a path inside the temporary folder

    // Copies every file and folder of the input that is not a weight file (the checkpoint's own
    // or weights_outside_index), config.json or reap_prune.json (tokenizer, generation config,
    // README, ...).
    void copy_other_files(const HfCheckpoint & in) const;
    // Renames the folder into place.
    void commit();

private:
    std::string final_;
    std::string tmp_;
    bool        done_ = false;
};

// Writes `text` to `path` (inside a temporary output folder).
void write_text_file(const std::string & path, const std::string & text);

// The index of a sharded output: the input index's other keys, metadata.total_size the sum of
// tensor bytes, and the weight map.
std::string hf_index_text(const nlohmann::json & in_index, uint64_t total_size,
                          const std::vector<std::pair<std::string, std::string>> & weight_map);

}  // namespace reap
