// One writer per output: a lock file beside what a command writes (a sweep's folder, a prune's
// split set), so that two runs started at once do not mix their files. The lock file holds the
// owner's pid for the message; the lock itself is flock(2) on it, which the kernel releases when
// the owner dies however it dies, so a stale file (SIGKILL, power loss) is simply taken over.
#pragma once

#include <string>

namespace reap {

class OutputLock {
public:
    // Takes the lock `lock_path` for writing `what` ("sweep folder out/"). Throws
    // "<what>: another reap (pid N) is writing it; wait for it to finish, or choose another
    // output" while another process holds it; a file left by a dead owner is taken over.
    OutputLock(const std::string & lock_path, const std::string & what);
    ~OutputLock();  // releases the lock and removes the file
    OutputLock(const OutputLock &)             = delete;
    OutputLock & operator=(const OutputLock &) = delete;

    // The lock file of an output file `path`: ".<name>.lock" in its folder.
    static std::string path_for_file(const std::string & path);

private:
    std::string path_;
    int         fd_ = -1;
};

}  // namespace reap
