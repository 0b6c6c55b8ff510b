#include "profile/calibration.h"

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"

#include <fstream>
#include <sstream>

namespace reap {

using nlohmann::json;

CalibFormat parse_calib_format(const std::string & s) {
    if (s == "auto") return CalibFormat::automatic;
    if (s == "prompt-response") return CalibFormat::prompt_response;
    if (s == "text") return CalibFormat::text;
    if (s == "messages") return CalibFormat::messages;
    if (s == "txt" || s == "plain") return CalibFormat::plain;
    fail("unknown calibration format '%s' (auto, prompt-response, text, messages, txt)", s.c_str());
}

// How a file is read: calibration data for `profile`, or the prompts of `eval --prompts`.
struct Reading {
    CalibFormat  format;
    bool         strict;
    bool         prompt_alone;  // a `prompt` without `response` is a sample (a prompt to continue)
    const char * noun;          // "calibration" or "prompts", for the messages
};

// Malformed lines reported one by one per file; the rest are only counted, so a binary or
// foreign file cannot flood the terminal.
constexpr size_t k_max_line_warnings = 10;

// Calibration data is text: a NUL byte or a control character other than tab, newline, form
// feed, carriage return and escape means binary data (a model file, an archive).
static void refuse_binary(const std::string & path, const std::string & head, const char * noun) {
    for (size_t i = 0; i < head.size(); i++) {
        const unsigned char c = static_cast<unsigned char>(head[i]);
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r' && c != 0x1b) {
            fail("%s: binary data (byte 0x%02x at offset %zu); %s data must be JSONL or plain text", path.c_str(),
                 unsigned(c), i, noun);
        }
    }
}

// Turns one parsed JSONL record into a sample, or returns the reason it is unusable.
static std::string record_to_sample(const json & j, const Reading & how, CalibSample & s) {
    if (!j.is_object()) {
        return "not a JSON object";
    }
    auto str = [&](const char * k) -> const json * {
        auto it = j.find(k);
        return it != j.end() && it->is_string() ? &*it : nullptr;
    };
    const CalibFormat format    = how.format;
    const bool        want_auto = format == CalibFormat::automatic;
    if ((want_auto || format == CalibFormat::messages) && j.contains("messages")) {
        const json & m = j["messages"];
        if (!m.is_array() || m.empty()) {
            return "'messages' must be a non-empty array";
        }
        for (const auto & msg : m) {
            if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string() || !msg.contains("content") ||
                !msg["content"].is_string()) {
                return "every message needs string 'role' and 'content'";
            }
        }
        s.messages = m;
        s.is_chat  = true;
        return "";
    }
    if ((want_auto || format == CalibFormat::prompt_response) && (str("prompt") || str("response"))) {
        if (!str("prompt") || (!str("response") && !how.prompt_alone)) {
            return how.prompt_alone ? "a 'response' needs its string 'prompt'"
                                    : "needs both string 'prompt' and 'response'";
        }
        // the prompt and the newline before its response, whether the response is given or not
        s.prompt = (*str("prompt")).get<std::string>() + "\n";
        s.text   = s.prompt + (str("response") ? (*str("response")).get<std::string>() : std::string());
        return "";
    }
    if ((want_auto || format == CalibFormat::text) && str("text")) {
        s.text = s.prompt = (*str("text")).get<std::string>();
        return s.text.empty() ? "empty 'text'" : "";
    }
    switch (format) {
        case CalibFormat::messages: return "no 'messages' array";
        case CalibFormat::prompt_response: return "no 'prompt'/'response' strings";
        case CalibFormat::text: return "no 'text' string";
        default:
            return how.prompt_alone ? "no 'text', 'prompt' or 'messages' field"
                                    : "no 'text', 'prompt'/'response' or 'messages' field";
    }
}

namespace {

// Checks the first 64 KiB of `in` for binary data, then rewinds it.
void refuse_binary_file(const std::string & path, std::ifstream & in, const char * noun) {
    std::string head(64 * 1024, '\0');
    in.read(&head[0], std::streamsize(head.size()));
    head.resize(size_t(in.gcount()));
    refuse_binary(path, head, noun);
    in.clear();
    in.seekg(0);
}

// A whole .txt file is one sample; it is cut into context-size windows after tokenization.
void read_plain_file(std::ifstream & in, size_t fi, std::vector<CalibSample> & out, CalibFileReport & rep) {
    std::stringstream ss;
    ss << in.rdbuf();
    CalibSample s;
    s.text     = ss.str();
    s.is_plain = true;
    s.file     = fi;
    if (!s.text.empty()) {
        out.push_back(std::move(s));
        rep.samples = 1;
    }
}

// One sample per non-blank line; a malformed line is skipped with a warning, or fatal with
// `strict`.
void read_jsonl_file(std::ifstream & in, size_t fi, const Reading & how, std::vector<CalibSample> & out,
                     CalibFileReport & rep) {
    const std::string & path = rep.path;
    std::string         line;
    size_t              ln = 0;
    while (std::getline(in, line)) {
        ln++;
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        CalibSample s;
        s.file = fi;
        s.line = ln;
        std::string why;
        try {
            why = record_to_sample(json::parse(line), how, s);
        } catch (const json::out_of_range &) {
            why = "malformed JSON (a number out of range)";
        } catch (const json::exception &) {
            why = "malformed JSON";
        }
        if (!why.empty()) {
            if (how.strict) {
                fail("%s:%zu: %s", path.c_str(), ln, why.c_str());
            }
            if (rep.skipped < k_max_line_warnings) {
                log_warn("%s:%zu: %s; line skipped", path.c_str(), ln, why.c_str());
            }
            rep.skipped++;
            continue;
        }
        out.push_back(std::move(s));
        rep.samples++;
    }
    if (rep.skipped > k_max_line_warnings) {
        log_warn("%s: %zu more malformed lines skipped", path.c_str(), rep.skipped - k_max_line_warnings);
    }
}

}  // namespace

namespace {

// Every file of `files` read by `how`; the caller refuses an empty result.
std::vector<CalibSample> read_files(const std::vector<std::string> & files, const Reading & how,
                                    std::vector<CalibFileReport> & report) {
    std::vector<CalibSample> out;
    report.clear();
    for (size_t fi = 0; fi < files.size(); fi++) {
        const std::string & path = files[fi];
        std::ifstream       in(path, std::ios::binary);
        if (!in) {
            fail("%s: cannot open the %s file", path.c_str(), how.noun);
        }
        refuse_binary_file(path, in, how.noun);
        CalibFileReport rep{path, 0, 0};
        const bool      plain =
            how.format == CalibFormat::plain ||
            (how.format == CalibFormat::automatic && !ends_with(path, ".jsonl") && !ends_with(path, ".json"));
        if (plain) {
            read_plain_file(in, fi, out, rep);
        } else {
            read_jsonl_file(in, fi, how, out, rep);
        }
        report.push_back(rep);
    }
    return out;
}

}  // namespace

std::vector<CalibSample> load_calibration(const std::vector<std::string> & files, CalibFormat format, bool strict,
                                          std::vector<CalibFileReport> & report) {
    if (files.empty()) {
        fail("no calibration data given (use --data FILE)");
    }
    auto out = read_files(files, {format, strict, false, "calibration"}, report);
    if (out.empty() && files.size() == 1) fail("%s: no usable calibration samples", files.front().c_str());
    if (out.empty()) fail("no usable calibration samples in %zu files", files.size());
    return out;
}

std::vector<CalibSample> load_prompt_samples(const std::string & path) {
    std::vector<CalibFileReport> report;
    auto                         out = read_files({path}, {CalibFormat::automatic, true, true, "prompts"}, report);
    if (out.empty()) fail("%s: no prompts in the prompts file", path.c_str());
    return out;
}

}  // namespace reap
