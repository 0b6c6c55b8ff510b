#include "sweep/sweep_folder.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/hash.h"
#include "gguf/content_id.h"
#include "gguf/gguf_file.h"

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace reap {

namespace {

constexpr const char * k_record = ".reap-sweep.json";
constexpr const char * k_lock   = ".reap-sweep.lock";

// The directory must exist before its lock file can.
std::string created(const std::string & dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("%s: cannot create the output folder (%s)", dir.c_str(), ec.message().c_str());
    if (!fs::is_directory(dir)) fail("%s: is not a folder; give -o a new or empty folder", dir.c_str());
    return dir + "/" + k_lock;
}

// 64-bit FNV-1a of a file's bytes, read in blocks.
std::string file_content_id(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open it", path.c_str());
    Fnv1a             h;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        h.bytes(buf.data(), size_t(in.gcount()));
    }
    if (in.bad()) fail("%s: read error", path.c_str());
    return strfmt("%016llx", (unsigned long long) h.h);
}

nlohmann::json files_identity(const std::vector<std::string> & paths) {
    nlohmann::json a = nlohmann::json::array();
    for (const std::string & p : paths)
        a.push_back(file_content_id(p));
    return a;
}

// What the folder holds besides the lock: a few names for the message.
std::vector<std::string> entries(const std::string & dir) {
    std::vector<std::string> names;
    std::error_code          ec;
    for (const auto & e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n != k_lock) names.push_back(n);
    }
    if (ec) fail("%s: cannot list the output folder (%s)", dir.c_str(), ec.message().c_str());
    return names;
}

std::string some_of(const std::vector<std::string> & names) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < 3; i++)
        s += (s.empty() ? "" : ", ") + names[i];
    if (names.size() > 3) s += strfmt(", and %zu more", names.size() - 3);
    return s;
}

}  // namespace

nlohmann::json sweep_identity(const std::string & model, const std::vector<std::string> & calib,
                              const std::vector<std::string> & stats, const std::vector<std::string> & quant,
                              const std::string & imatrix) {
    nlohmann::json calib_names = nlohmann::json::array();
    for (const std::string & c : calib)
        calib_names.push_back(base_name(c));
    std::string stats_label;  // "code.json", or "code.json+prose.json" for several sets
    for (const std::string & f : stats)
        stats_label += (stats_label.empty() ? "" : "+") + base_name(f);
    return {
        {"model", base_name(model)},
        {"model_content_id", model_content_id_text(GgufFile::open(model))},
        {"calib", calib_names},
        {"calib_content_ids", files_identity(calib)},
        {"stats", stats_label},
        {"stats_content_ids", files_identity(stats)},
        {"quant", quant},
        {"imatrix", imatrix.empty() ? "" : base_name(imatrix)},
        {"imatrix_content_ids", files_identity(imatrix.empty() ? std::vector<std::string>{} : std::vector{imatrix})}};
}

bool same_sweep(const nlohmann::json & a, const nlohmann::json & b) {
    if (!a.is_object() || !b.is_object()) return false;
    for (const char * key : {"model_content_id", "calib_content_ids", "stats_content_ids"}) {
        if (!a.contains(key) || !b.contains(key) || a[key] != b[key]) return false;
    }
    // Records written before quantized points have neither key: no quant types, no imatrix.
    for (const char * key : {"quant", "imatrix_content_ids"}) {
        if (a.value(key, nlohmann::json::array()) != b.value(key, nlohmann::json::array())) return false;
    }
    return true;
}

SweepFolder::SweepFolder(const std::string & dir, const nlohmann::json & identity, bool resume)
    : lock_(created(dir), dir + " (a sweep's output folder)") {
    const std::string              record = dir + "/" + k_record;
    const std::vector<std::string> names  = entries(dir);
    if (names.empty()) {
        write_file_atomic(record, nlohmann::json{{"identity", identity}}.dump(1) + "\n");
        return;
    }
    if (!fs::exists(record)) {
        fail(
            "%s: not empty (%s) and not a sweep's folder; a sweep writes only into a new or empty folder, or continues "
            "its own with --resume: choose another -o",
            dir.c_str(), some_of(names).c_str());
    }
    if (!resume) fail("%s: holds a sweep already; continue it with --resume, or choose another -o", dir.c_str());
    const nlohmann::json old = read_json_file(record, "sweep record");
    if (!old.is_object() || !old.contains("identity") || !same_sweep(old["identity"], identity)) {
        fail("%s: holds the sweep of another model or other statistics/calibration/quant types (%s); choose another -o",
             dir.c_str(), old.is_object() && old.contains("identity") ? old["identity"].dump().c_str() : "no identity");
    }
    resumed_ = true;
}

}  // namespace reap
