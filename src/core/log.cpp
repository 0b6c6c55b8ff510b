#include "core/log.h"

#include "ggml.h"
#include "llama.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace reap {

static std::atomic<int>          g_threshold{int(LogLevel::warn)};
static thread_local LogCapture * t_capture = nullptr;

static int engine_level(ggml_log_level level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return int(LogLevel::debug);
        case GGML_LOG_LEVEL_INFO: return int(LogLevel::info);
        case GGML_LOG_LEVEL_WARN: return int(LogLevel::warn);
        case GGML_LOG_LEVEL_ERROR: return int(LogLevel::error);
        default: return -1;  // NONE / CONT: continuation of the previous line
    }
}

void log_engine_message(int level, const char * text) {
    static thread_local int last_level = int(LogLevel::info);
    if (level < 0) {
        level = last_level;
    }
    last_level = level;
    if (t_capture != nullptr && level >= int(LogLevel::warn)) {
        t_capture->text_ += text;
        return;
    }
    if (level >= g_threshold.load()) {
        std::fputs(text, stderr);
    }
}

static void engine_callback(ggml_log_level level, const char * text, void *) {
    log_engine_message(engine_level(level), text);
}

void log_init(LogLevel engine_threshold) {
    g_threshold = int(engine_threshold);
    ggml_log_set(engine_callback, nullptr);
    llama_log_set(engine_callback, nullptr);
}

static void vlog(const char * prefix, const char * fmt, va_list ap) {
    std::fputs(prefix, stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
}

void log_info(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void log_warn(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog("reap: warning: ", fmt, ap);
    va_end(ap);
}

LogCapture::LogCapture() : prev_(t_capture) { t_capture = this; }
LogCapture::~LogCapture() { t_capture = prev_; }

std::string LogCapture::last_line() const {
    size_t end = text_.find_last_not_of(" \n\r\t");
    if (end == std::string::npos) {
        return {};
    }
    size_t      begin = text_.rfind('\n', end);
    std::string line  = text_.substr(begin == std::string::npos ? 0 : begin + 1,
                                    end + 1 - (begin == std::string::npos ? 0 : begin + 1));
    // ggml prefixes its messages with the C function name ("gguf_init_from_file_impl: ...").
    size_t colon = line.find(": ");
    if (colon != std::string::npos && line.find(' ') > colon) {
        line = line.substr(colon + 2);
    }
    return line;
}

}  // namespace reap
