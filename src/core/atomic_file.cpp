#include "core/atomic_file.h"

#include "core/error.h"

#include <unistd.h>
#include <cerrno>
#include <cstring>

namespace reap {

static std::string temp_name_for(const std::string & final_path) {
    const size_t      slash = final_path.rfind('/');
    const std::string dir   = slash == std::string::npos ? "" : final_path.substr(0, slash + 1);
    const std::string base  = slash == std::string::npos ? final_path : final_path.substr(slash + 1);
    return dir + "." + base + ".tmp." + std::to_string(::getpid());
}

AtomicFile::AtomicFile(const std::string & final_path) : final_(final_path), tmp_(temp_name_for(final_path)) {
    fp_ = std::fopen(tmp_.c_str(), "wb");
    if (fp_ == nullptr) {
        fail("%s: cannot create output: %s", final_.c_str(), std::strerror(errno));
    }
}

AtomicFile::~AtomicFile() {
    if (fp_ != nullptr) std::fclose(fp_);
    if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::write(const void * data, size_t size) {
    if (size > 0 && std::fwrite(data, 1, size, fp_) != size) {
        fail("%s: write failed: %s", final_.c_str(), std::strerror(errno));
    }
}

void AtomicFile::sync() {
    if (fp_ == nullptr) return;  // synced already
    const bool ok  = std::fflush(fp_) == 0 && ::fsync(::fileno(fp_)) == 0;
    const int  err = errno;
    if (!ok) {
        fail("%s: write failed: %s", final_.c_str(), std::strerror(err));
    }
    if (std::fclose(fp_) != 0) {
        fp_ = nullptr;
        std::remove(tmp_.c_str());
        fail("%s: write failed: %s", final_.c_str(), std::strerror(errno));
    }
    fp_ = nullptr;
}

void AtomicFile::commit() {
    sync();
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
        const int e = errno;
        std::remove(tmp_.c_str());
        fail("%s: cannot rename output into place: %s", final_.c_str(), std::strerror(e));
    }
    committed_ = true;
}

void write_file_atomic(const std::string & path, const std::string & text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

}  // namespace reap
