#include "core/fs_util.h"

#include "core/error.h"

#include <sys/stat.h>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace reap {

std::string base_name(const std::string & path) {
    const size_t s = path.find_last_of('/');
    return s == std::string::npos ? path : path.substr(s + 1);
}

uint64_t file_size(const std::string & path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

bool same_file(const std::string & a, const std::string & b) {
    struct stat sa {
    }, sb{};
    if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0) {
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    }
    std::error_code ea, eb;
    const auto      ca = std::filesystem::weakly_canonical(a, ea);
    const auto      cb = std::filesystem::weakly_canonical(b, eb);
    return ea || eb ? a == b : ca == cb;
}

namespace {

// The absolute path with links resolved as far as the path exists, without a trailing slash.
std::string resolved_path(const std::string & p) {
    std::error_code             ec;
    const std::filesystem::path abs = std::filesystem::absolute(p, ec);
    std::filesystem::path       c   = std::filesystem::weakly_canonical(abs, ec);
    if (ec) c = abs.lexically_normal();
    std::string s = c.string();
    while (s.size() > 1 && s.back() == '/')
        s.pop_back();
    return s;
}

// True when `inner` is `outer` itself or a path inside the folder `outer`.
bool same_or_inside(const std::string & inner, const std::string & outer) {
    if (same_file(inner, outer)) return true;
    const std::string i = resolved_path(inner), o = resolved_path(outer);
    return i == o || (i.size() > o.size() && i.compare(0, o.size(), o) == 0 && (o == "/" || i[o.size()] == '/'));
}

}  // namespace

void refuse_clashing_outputs(const std::vector<std::string> & outputs, const std::vector<std::string> & inputs) {
    for (size_t a = 0; a < outputs.size(); a++) {
        const std::string & out = outputs[a];
        if (out.empty()) continue;
        for (const auto & in : inputs) {
            if (!in.empty() && (same_or_inside(out, in) || same_or_inside(in, out))) {
                fail("%s: is also an input (%s); writing it would destroy that input, choose another output",
                     out.c_str(), in.c_str());
            }
        }
        for (size_t b = 0; b < a; b++) {
            if (!outputs[b].empty() && (same_or_inside(out, outputs[b]) || same_or_inside(outputs[b], out))) {
                fail("%s: also given as another output (%s); one would overwrite the other, choose another name",
                     out.c_str(), outputs[b].c_str());
            }
        }
    }
}

void refuse_output_over_inputs(const std::string & output, const std::vector<std::string> & inputs) {
    refuse_clashing_outputs({output}, inputs);
}

void refuse_input_given_twice(const std::vector<std::string> & inputs) {
    for (size_t i = 0; i < inputs.size(); i++) {
        for (size_t k = 0; k < i; k++) {
            if (inputs[k] == inputs[i] || same_file(inputs[k], inputs[i])) {
                fail("%s: given twice (also as %s): its tokens would count twice", inputs[i].c_str(),
                     inputs[k].c_str());
            }
        }
    }
}

std::string iso_utc_now() {
    char        buf[32];
    std::time_t t = std::time(nullptr);
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return buf;
}

namespace {

// Copying or walking a json value recurses once per nesting level: a hostile file nested
// 100k deep would overflow the stack in whichever reader touches it. Real files nest a few
// levels, so deeper ones are refused while parsing, before any value is built.
template <class Input>
nlohmann::json parse_json_limited(Input && in, const std::string & origin, const char * what) {
    auto limit_depth = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json &) {
        if (depth >= k_max_json_depth && (event == nlohmann::json::parse_event_t::object_start ||
                                          event == nlohmann::json::parse_event_t::array_start)) {
            fail("%s: not a valid %s (JSON nested deeper than %d levels)", origin.c_str(), what, k_max_json_depth);
        }
        return true;
    };
    try {
        return nlohmann::json::parse(in, limit_depth);
    } catch (const nlohmann::json::exception & e) {
        fail("%s: not valid JSON (%s)", origin.c_str(), e.what());
    }
}

}  // namespace

nlohmann::json read_json_file(const std::string & path, const char * what) {
    std::ifstream in(path);
    if (!in) {
        fail("%s: cannot open %s", path.c_str(), what);
    }
    return parse_json_limited(in, path, what);
}

nlohmann::json parse_json_text(const std::string & text, const std::string & origin, const char * what) {
    return parse_json_limited(text, origin, what);
}

}  // namespace reap
