#include "hf/hf_output.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <unistd.h>

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

HfOutputFolder::HfOutputFolder(const std::string & final_dir, const std::string & input) : final_(final_dir) {
    while (final_.size() > 1 && final_.back() == '/')
        final_.pop_back();
    const std::string out_abs = absolute_clean(final_), in_abs = absolute_clean(input);
    if (same_file(final_, input) || out_abs == in_abs) {
        fail("%s: the output would overwrite the input model", final_.c_str());
    }
    if (out_abs.compare(0, in_abs.size() + 1, in_abs + "/") == 0) {
        fail("%s: the output folder would be inside the input model's folder %s", final_.c_str(), input.c_str());
    }
    std::error_code ec;
    if (fs::exists(final_, ec) && !(fs::is_directory(final_, ec) && fs::is_empty(final_, ec))) {
        fail("%s: already exists; remove it or choose another output folder", final_.c_str());
    }
    const fs::path f(final_);
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

void HfOutputFolder::copy_other_files(const HfCheckpoint & in) const {
    std::error_code ec;
    for (const auto & e : fs::directory_iterator(in.dir, ec)) {
        const std::string base = e.path().filename().string();
        if (in.is_weight_file(base) || base == "config.json" || base == "reap_prune.json") continue;
        fs::copy(e.path(), fs::path(tmp_) / base, fs::copy_options::recursive, ec);
        if (ec) fail("%s: cannot copy into the output: %s", e.path().string().c_str(), ec.message().c_str());
    }
    if (ec) fail("%s: cannot list the folder: %s", in.dir.c_str(), ec.message().c_str());
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
