#include "gguf/stats_imatrix.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"

#include <unistd.h>

namespace reap {

namespace {
std::string folder_of(const std::string & path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}
std::string absolute(const std::string & path) {
    if (!path.empty() && path[0] == '/') return path;
    char buf[4096];
    return getcwd(buf, sizeof buf) != nullptr ? std::string(buf) + "/" + path : path;
}
}  // namespace

std::string imatrix_reference(const std::string & stats_path, const std::string & imatrix_path) {
    if (same_file(folder_of(stats_path), folder_of(imatrix_path))) return base_name(imatrix_path);
    return absolute(imatrix_path);
}

std::string imatrix_path_of(const std::string & stats_path, const StatsImatrix & ref) {
    if (!ref.file.empty() && ref.file[0] == '/') return ref.file;
    return folder_of(stats_path) + "/" + ref.file;
}

std::optional<Imatrix> recorded_imatrix(const std::string & stats_path, const StatsMeta & meta) {
    if (!meta.imatrix) return std::nullopt;
    const std::string path = imatrix_path_of(stats_path, *meta.imatrix);
    Imatrix           m;
    try {
        m = read_imatrix(path);
    } catch (const Error & e) {
        fail("%s records the importance matrix %s: %s", stats_path.c_str(), path.c_str(), e.what());
    }
    if (imatrix_hash_text(m) != meta.imatrix->hash) {
        fail("%s: not the importance matrix %s records (another run's, or changed since)", path.c_str(),
             stats_path.c_str());
    }
    return m;
}

std::optional<Imatrix> merge_recorded_imatrices(const std::vector<std::string> & stats_paths,
                                                const std::vector<StatsMeta> & metas, bool required) {
    size_t with = 0;
    for (const StatsMeta & m : metas)
        with += m.imatrix ? 1 : 0;
    if (with == 0 && !required) return std::nullopt;
    if (with < metas.size()) {
        size_t i = 0;
        while (metas[i].imatrix)
            i++;
        if (required) {
            fail("%s has no importance matrix (profile --imatrix): the merged one would leave its tokens out",
                 stats_paths[i].c_str());
        }
        log_warn("%s has no importance matrix (profile --imatrix): the merged statistics get none",
                 stats_paths[i].c_str());
        return std::nullopt;
    }
    Imatrix sum;
    for (size_t i = 0; i < metas.size(); i++) {
        add_imatrix(sum, *recorded_imatrix(stats_paths[i], metas[i]),
                    imatrix_path_of(stats_paths[i], *metas[i].imatrix));
    }
    return sum;
}

std::vector<std::string> recorded_imatrix_paths(const std::vector<std::string> & stats_paths,
                                                const std::vector<StatsMeta> &   metas) {
    std::vector<std::string> out;
    for (size_t i = 0; i < metas.size(); i++) {
        if (metas[i].imatrix) out.push_back(imatrix_path_of(stats_paths[i], *metas[i].imatrix));
    }
    return out;
}

}  // namespace reap
