#include "hf/hf_output.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace reap {

namespace fs = std::filesystem;

namespace {

std::string absolute_clean(const std::string & p) {
    std::error_code ec;
    fs::path        a = fs::weakly_canonical(fs::absolute(p), ec);
    if (ec) a = fs::absolute(p).lexically_normal();
    std::string s = a.string();
    while (s.size() > 1 && s.back() == '/')
        s.pop_back();
    return s;
}

}  // namespace

void check_hf_output_folder(const std::string & final_dir, const std::string & input) {
    std::string final = final_dir;
    while (final.size() > 1 && final.back() == '/')
        final.pop_back();
    const std::string out_abs = absolute_clean(final), in_abs = absolute_clean(input);
    if (same_file(final, input) || out_abs == in_abs) {
        fail("%s: the output would overwrite the input model", final.c_str());
    }
    if (out_abs.compare(0, in_abs.size() + 1, in_abs + "/") == 0) {
        fail("%s: the output folder would be inside the input model's folder %s", final.c_str(), input.c_str());
    }
    std::error_code ec;
    if (fs::exists(final, ec) && !(fs::is_directory(final, ec) && fs::is_empty(final, ec))) {
        fail("%s: already exists; remove it or choose another output folder", final.c_str());
    }
}

HfOutputFolder::HfOutputFolder(const std::string & final_dir, const std::string & input) : final_(final_dir) {
    while (final_.size() > 1 && final_.back() == '/')
        final_.pop_back();
    check_hf_output_folder(final_, input);
    std::error_code ec;
    const fs::path  f(final_);
    tmp_ = (f.parent_path() / ("." + f.filename().string() + ".tmp." + std::to_string(::getpid()))).string();
    fs::remove_all(tmp_, ec);
    if (!fs::create_directory(tmp_, ec)) {
        fail("%s: cannot create the output folder: %s", final_.c_str(), ec.message().c_str());
    }
}

HfOutputFolder::~HfOutputFolder() {
    if (!done_) {
        std::error_code ec;
        fs::remove_all(tmp_, ec);
    }
}

std::string HfOutputFolder::file(const std::string & base) const { return (fs::path(tmp_) / base).string(); }

namespace {

// Copies the folder `from` (`rel` inside the input) to `to`, but the files in `skip` (paths
// relative to the input). A folder that holds none of them is copied whole.
void copy_tree_except(const fs::path & from, const fs::path & to, const std::string & rel,
                      const std::vector<std::string> & skip) {
    std::error_code ec;
    for (const auto & e : fs::directory_iterator(from, ec)) {
        const std::string name = (rel.empty() ? "" : rel + "/") + e.path().filename().string();
        if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
        const bool     holds_skipped = std::any_of(skip.begin(), skip.end(), [&](const std::string & s) {
            return s.compare(0, name.size() + 1, name + "/") == 0;
        });
        const fs::path dst           = to / e.path().filename();
        if (holds_skipped && !e.is_symlink() && e.is_directory()) {
            fs::create_directory(dst, ec);
            if (!ec) copy_tree_except(e.path(), dst, name, skip);
        } else {
            fs::copy(e.path(), dst, fs::copy_options::recursive, ec);
        }
        if (ec) fail("%s: cannot copy into the output: %s", e.path().string().c_str(), ec.message().c_str());
    }
    if (ec) fail("%s: cannot list the folder: %s", from.string().c_str(), ec.message().c_str());
}

}  // namespace

void HfOutputFolder::copy_other_files(const HfCheckpoint & in) const {
    std::vector<std::string> skip = in.weights_outside_index;
    skip.insert(skip.end(), {"config.json", "reap_prune.json", k_hf_index_name});  // written by the pruner
    skip.insert(skip.end(), in.shard_names.begin(), in.shard_names.end());
    copy_tree_except(in.dir, tmp_, "", skip);
}

void HfOutputFolder::commit() {
    std::error_code ec;
    if (fs::is_directory(final_, ec)) fs::remove(final_, ec);  // an empty folder (checked at start)
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
        fail("%s: cannot rename the output folder into place: %s", final_.c_str(), std::strerror(errno));
    }
    done_ = true;
}

void write_text_file(const std::string & path, const std::string & text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.close();
    if (!out) fail("%s: write failed", path.c_str());
}

std::string hf_index_text(const nlohmann::json & in_index, uint64_t total_size,
                          const std::vector<std::pair<std::string, std::string>> & weight_map) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    nlohmann::json meta      = in_index.is_object() && in_index.contains("metadata") && in_index["metadata"].is_object()
                                   ? in_index["metadata"]
                                   : nlohmann::json::object();
    meta["total_size"]       = total_size;
    j["metadata"]            = meta;
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (const auto & [name, file] : weight_map)
        map[name] = file;
    j["weight_map"] = map;
    return j.dump(2) + "\n";
}

}  // namespace reap
