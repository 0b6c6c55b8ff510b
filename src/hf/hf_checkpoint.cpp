#include "hf/hf_checkpoint.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace reap {

namespace fs = std::filesystem;

bool is_hf_folder(const std::string & path) {
    std::error_code ec;
    return fs::is_directory(path, ec);
}

bool is_weight_file_name(const std::string & name) {
    static const char * const ext[] = {".safetensors", ".bin",     ".pt",   ".pth", ".ckpt",      ".gguf",
                                       ".h5",          ".msgpack", ".onnx", ".npz", ".index.json"};
    for (const char * e : ext) {
        if (ends_with(name, e)) return true;
    }
    return false;
}

std::string hf_shard_name(size_t k, size_t n) { return strfmt("model-%05zu-of-%05zu.safetensors", k, n); }

namespace {

std::string read_text(const std::string & path, const char * what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open %s", path.c_str(), what);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The shards the index names, checked: plain file names in the folder, each tensor named once.
std::map<std::string, std::string> read_weight_map(const nlohmann::json & index, const std::string & path) {
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        fail("%s: no \"weight_map\" object", path.c_str());
    }
    std::map<std::string, std::string> map;
    for (const auto & [name, file] : index["weight_map"].items()) {
        if (!file.is_string())
            fail("%s: tensor '%s' maps to something that is not a file name", path.c_str(), name.c_str());
        const std::string f = file.get<std::string>();
        if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
            fail("%s: tensor '%s' maps to '%s', which is not a file in the folder", path.c_str(), name.c_str(),
                 f.c_str());
        }
        map[name] = f;
    }
    if (map.empty()) fail("%s: the weight map names no tensor", path.c_str());
    return map;
}

// Weight files of the folder, at any depth, that are not the checkpoint's own (links to folders
// are not followed).
std::vector<std::string> other_weight_files(const HfCheckpoint & c) {
    std::vector<std::string> out;
    std::error_code          ec;
    for (auto it = fs::recursive_directory_iterator(c.dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string rel = it->path().lexically_relative(c.dir).generic_string();
        if (it->is_directory() || !is_weight_file_name(rel)) continue;
        if (it.depth() == 0 && c.is_weight_file(rel)) continue;
        out.push_back(rel);
    }
    if (ec) fail("%s: cannot list the folder: %s", c.dir.c_str(), ec.message().c_str());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

HfCheckpoint HfCheckpoint::open(const std::string & dir) {
    HfCheckpoint c;
    c.dir         = dir;
    c.config_path = (fs::path(dir) / "config.json").string();
    if (!fs::exists(c.config_path)) {
        fail("%s: is a directory without config.json, not a Hugging Face model folder", dir.c_str());
    }
    c.config_text = read_text(c.config_path, "config.json");
    c.config      = parse_json_text(c.config_text, c.config_path, "config.json");
    if (!c.config.is_object()) fail("%s: not a JSON object", c.config_path.c_str());

    const std::string                  index_path = (fs::path(dir) / k_hf_index_name).string();
    std::map<std::string, std::string> weight_map;
    if (fs::exists(index_path)) {
        c.sharded  = true;
        c.index    = read_json_file(index_path, "safetensors index");
        weight_map = read_weight_map(c.index, index_path);
        std::set<std::string> files;
        for (const auto & kv : weight_map)
            files.insert(kv.second);
        c.shard_names.assign(files.begin(), files.end());
        // transformers loads a model.safetensors before the index: which one is the model?
        if (!files.count(k_hf_single_name) && fs::exists(fs::path(dir) / k_hf_single_name)) {
            fail(
                "%s: holds both %s and %s, which does not name it: which is the model is ambiguous (transformers "
                "loads the single file); remove one",
                dir.c_str(), k_hf_single_name, k_hf_index_name);
        }
    } else if (fs::exists(fs::path(dir) / k_hf_single_name)) {
        c.shard_names = {k_hf_single_name};
    } else {
        fail("%s: no %s or %s: not a Hugging Face safetensors checkpoint", dir.c_str(), k_hf_single_name,
             k_hf_index_name);
    }
    for (const auto & name : c.shard_names) {
        const std::string p = (fs::path(dir) / name).string();
        if (!fs::exists(p)) fail("%s: missing shard (named by %s)", p.c_str(), k_hf_index_name);
        c.shards.push_back(SafetensorsFile::open(p));
    }
    std::set<std::string> seen;
    for (size_t s = 0; s < c.shards.size(); s++) {
        for (const auto & t : c.shards[s].tensors()) {
            if (!seen.insert(t.name).second)
                fail("%s: tensor '%s' is also in another shard", c.shards[s].path().c_str(), t.name.c_str());
            if (c.sharded) {
                const auto it = weight_map.find(t.name);
                if (it == weight_map.end() || it->second != c.shard_names[s]) {
                    fail("%s: tensor '%s' is not listed for this shard in %s", c.shards[s].path().c_str(),
                         t.name.c_str(), k_hf_index_name);
                }
            }
            c.tensors.push_back({&t, s});
        }
    }
    for (const auto & [name, file] : weight_map) {
        if (!seen.count(name))
            fail("%s: tensor '%s' is in no shard (the index names %s)", index_path.c_str(), name.c_str(), file.c_str());
    }
    c.weights_outside_index = other_weight_files(c);
    return c;
}

const HfTensor * HfCheckpoint::find(const std::string & name) const {
    for (const auto & t : tensors) {
        if (t.t->name == name) return &t;
    }
    return nullptr;
}

uint64_t HfCheckpoint::weights_size() const {
    uint64_t n = 0;
    for (const auto & s : shards)
        n += s.file_size();
    return n;
}

bool HfCheckpoint::is_weight_file(const std::string & base) const {
    if (base == k_hf_index_name) return true;
    for (const auto & s : shard_names) {
        if (s == base) return true;
    }
    return false;
}

}  // namespace reap
