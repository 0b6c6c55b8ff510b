// GgufFile's byte access: the tensor reads and the page-cache hints of a streaming copy (the
// reader's key and tensor parsing is gguf_file.cpp).
#include "gguf/gguf_file.h"

#include "core/error.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace reap {

FILE * GgufFile::split_file(int split) const {
    FILE *& fp = files_.at(size_t(split));
    if (fp == nullptr) {
        const std::string & sp = split_paths_[size_t(split)];
        fp                     = std::fopen(sp.c_str(), "rb");
        if (fp == nullptr) {
            fail("%s: %s", sp.c_str(), std::strerror(errno));
        }
    }
    return fp;
}

void GgufFile::prefetch(const TensorInfo & t, uint64_t offset, uint64_t size) const {
    if (offset > t.nbytes || size > t.nbytes - offset || size == 0) return;
    ::posix_fadvise(fileno(split_file(t.split)), off_t(t.file_offset + offset), off_t(size), POSIX_FADV_WILLNEED);
}

void GgufFile::drop_cached(const TensorInfo & t, uint64_t offset, uint64_t size) const {
    if (offset > t.nbytes || size > t.nbytes - offset || size == 0) return;
    ::posix_fadvise(fileno(split_file(t.split)), off_t(t.file_offset + offset), off_t(size), POSIX_FADV_DONTNEED);
}

void GgufFile::read(const TensorInfo & t, uint64_t offset, void * dst, uint64_t size) const {
    if (offset > t.nbytes || size > t.nbytes - offset) {
        fail("%s: read past the end of tensor '%s'", path_.c_str(), t.name.c_str());
    }
    FILE *              fp = split_file(t.split);
    const std::string & sp = split_paths_[size_t(t.split)];
    if (fseeko(fp, off_t(t.file_offset + offset), SEEK_SET) != 0 || std::fread(dst, 1, size, fp) != size) {
        fail("%s: cannot read tensor '%s' (file changed or truncated?)", sp.c_str(), t.name.c_str());
    }
}

}  // namespace reap
