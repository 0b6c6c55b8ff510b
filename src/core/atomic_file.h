// Write-then-rename: readers see either the old file or the complete new one, never a prefix.
#pragma once

#include <cstdio>
#include <string>

namespace reap {

// Opens "<dir>/.<name>.tmp.<pid>" next to `final_path`; commit() flushes, fsyncs and renames
// it over the final name; the destructor removes the temporary file if commit() was not reached
// (error, exception, disk full). Write errors are reported by write()/commit() as reap::Error.
class AtomicFile {
public:
    explicit AtomicFile(const std::string & final_path);
    ~AtomicFile();
    AtomicFile(const AtomicFile &)             = delete;
    AtomicFile & operator=(const AtomicFile &) = delete;

    FILE * fp() { return fp_; }
    void   write(const void * data, size_t size);
    // Flushes, fsyncs and closes the temporary: after it only the rename is left, which cannot
    // fail for want of space. Files that must appear together (a split set) are all synced first,
    // then all renamed. commit() syncs when this was not called.
    void sync();
    void commit();

private:
    std::string final_;
    std::string tmp_;
    FILE *      fp_        = nullptr;
    uint64_t    written_   = 0;  // bytes written so far
    uint64_t    started_   = 0;  // writeback started up to here
    uint64_t    dropped_   = 0;  // on disk and out of the page cache up to here
    bool        committed_ = false;
};

// Writes `text` to `path` atomically.
void write_file_atomic(const std::string & path, const std::string & text);

}  // namespace reap
