#include "core/output_lock.h"

#include "core/error.h"
#include "core/fs_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

namespace reap {

namespace {

std::string read_owner(int fd) {
    char          buf[32] = {};
    const ssize_t n       = ::pread(fd, buf, sizeof(buf) - 1, 0);
    std::string   s(buf, n > 0 ? size_t(n) : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s.empty() ? "unknown pid" : "pid " + s;
}

}  // namespace

OutputLock::OutputLock(const std::string & lock_path, const std::string & what) : path_(lock_path) {
    // Retried when the holder removed the file between our open and our flock: the lock we got
    // would be on an unlinked inode that a third run could not see.
    for (int attempt = 0; attempt < 8; attempt++) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("%s: cannot create the lock file (%s)", path_.c_str(), std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            const int         err   = errno;
            const std::string owner = read_owner(fd_);
            ::close(fd_);
            fd_ = -1;
            if (err == EWOULDBLOCK) {
                fail("%s: another reap (%s) is writing it (lock %s); wait for it to finish, or choose another output",
                     what.c_str(), owner.c_str(), path_.c_str());
            }
            fail("%s: cannot lock %s (%s)", what.c_str(), path_.c_str(), std::strerror(err));
        }
        struct stat by_fd {
        }, by_path{};
        if (::fstat(fd_, &by_fd) == 0 && ::stat(path_.c_str(), &by_path) == 0 && by_fd.st_ino == by_path.st_ino &&
            by_fd.st_dev == by_path.st_dev) {
            break;
        }
        ::close(fd_);
        fd_ = -1;
    }
    if (fd_ < 0) fail("%s: cannot take the lock %s (it keeps changing)", what.c_str(), path_.c_str());
    // A stale owner's pid (taken over) is replaced by ours.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
        // The pid is only for the message; the flock is the lock.
    }
}

OutputLock::~OutputLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());  // while still held: no one can have locked this inode meanwhile
    ::close(fd_);
}

std::string OutputLock::path_for_file(const std::string & path) {
    const size_t      s   = path.find_last_of('/');
    const std::string dir = s == std::string::npos ? "" : path.substr(0, s + 1);
    return dir + "." + base_name(path) + ".lock";
}

}  // namespace reap
