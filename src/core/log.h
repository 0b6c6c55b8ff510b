// One log sink for reap, ggml and llama.cpp messages.
//
// llama.cpp and ggml print through callbacks; reap routes both here so that the front end
// decides the verbosity, and so that a library call can capture ggml's complaint about a
// bad file and turn it into a one-line error instead of a screenful of log.
#pragma once

#include <string>

namespace reap {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, none = 4 };

// Installs the callbacks into ggml and llama.cpp (idempotent) and sets the threshold for
// messages that come from them. reap's own messages go through log_info/log_warn.
void log_init(LogLevel engine_threshold);

void log_info(const char * fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

// While alive, engine messages of level warn and above on this thread are collected instead of
// printed; text() is the last non-empty line, trimmed.
class LogCapture {
public:
    LogCapture();
    ~LogCapture();
    LogCapture(const LogCapture &)             = delete;
    LogCapture & operator=(const LogCapture &) = delete;
    std::string  last_line() const;

private:
    std::string  text_;
    LogCapture * prev_;
    friend void  log_engine_message(int, const char *);
};

void log_engine_message(int level, const char * text);

}  // namespace reap
