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

void refuse_output_over_inputs(const std::string & output, const std::vector<std::string> & inputs) {
    for (const auto & in : inputs) {
        if (same_file(output, in)) {
            fail("%s: is also an input (%s); writing it would destroy that input, choose another output",
                 output.c_str(), in.c_str());
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
