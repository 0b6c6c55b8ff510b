// Calibration input (README's `reap profile` row): JSONL with prompt/response, text, or chat
// messages, and plain text files. Parsing only; tokenization and chat rendering need the model
// (profiler.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace reap {

enum class CalibFormat { automatic, prompt_response, text, messages, plain };

CalibFormat parse_calib_format(const std::string & s);  // "auto", "prompt-response", "text", "messages", "txt"

struct CalibSample {
    std::string text;         // the text to tokenize (empty for chat samples)
    std::string prompt;       // what a generation starts from (`reap eval --prompts`): a text sample's
                              // text, a prompt/response sample's prompt and the newline before its response
    nlohmann::json messages;  // [{role, content}, ...] for chat samples, to render with the template
    bool           is_chat  = false;
    bool           is_plain = false;  // a whole .txt file: cut into context-size windows later
    size_t         file     = 0;      // index into the list of files
    size_t         line     = 0;      // 1-based line in a JSONL file
};

struct CalibFileReport {
    std::string path;
    size_t      samples = 0;
    size_t      skipped = 0;  // malformed lines
};

// Reads every file (format chosen by extension: .jsonl/.json -> JSONL, else plain text, unless
// `format` forces one). A malformed JSONL line is reported on stderr as "file:line: reason" and
// skipped, or fatal with `strict`. Throws when a file cannot be read or nothing usable remains.
std::vector<CalibSample> load_calibration(const std::vector<std::string> & files, CalibFormat format, bool strict,
                                          std::vector<CalibFileReport> & report);

// The prompts of `reap eval --prompts` (eval/generation.h): the same formats, read strictly (a
// malformed line is fatal), where a `prompt` needs no `response`. Errors name the file and speak
// of prompts, not calibration.
std::vector<CalibSample> load_prompt_samples(const std::string & path);

}  // namespace reap
