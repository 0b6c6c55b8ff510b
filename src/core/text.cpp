#include "core/text.h"

#include "core/error.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace reap {

std::string csv_quoted(const std::string & s) {
    std::string out = "\"";
    for (char c : s) {
        out += c;
        if (c == '"') out += '"';
    }
    return out + "\"";
}

bool starts_with(const std::string & s, const char * prefix) {
    const size_t n = std::strlen(prefix);
    return s.size() >= n && s.compare(0, n, prefix) == 0;
}

bool ends_with(const std::string & s, const char * suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

template <typename T>
static std::string ranges_of(const std::vector<T> & v, const char * sep) {
    std::string s;
    for (size_t i = 0; i < v.size();) {
        size_t j = i;
        while (j + 1 < v.size() && v[j + 1] == v[j] + 1) {
            j++;
        }
        if (!s.empty()) {
            s += sep;
        }
        s += j == i ? std::to_string(v[i]) : std::to_string(v[i]) + "-" + std::to_string(v[j]);
        i = j + 1;
    }
    return s.empty() ? "none" : s;
}

std::string id_ranges(const std::vector<uint32_t> & ids, const char * sep) { return ranges_of(ids, sep); }
std::string id_ranges(const std::vector<int> & ids, const char * sep) { return ranges_of(ids, sep); }

bool parse_canonical_uint(const std::string & s, uint64_t max, uint64_t & out) {
    if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0')) {
        return false;
    }
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + uint64_t(c - '0');
    }
    if (v > max) {
        return false;
    }
    out = v;
    return true;
}

std::vector<std::string> split_list(const std::string & s, char sep) {
    std::vector<std::string> out;
    size_t                   start = 0;
    while (true) {
        const size_t at = s.find(sep, start);
        out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
        if (at == std::string::npos) return out;
        start = at + 1;
    }
}

bool parse_number(const std::string & s, double & out) {
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    char *       end = nullptr;
    const double v   = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
    out = v;
    return true;
}

// The length of the valid UTF-8 character at s[i], or of the maximal subpart of one that is
// cut or wrong there (then `valid` is false). Ranges of the second byte per Unicode's table 3-7.
static size_t utf8_char(const std::string & s, size_t i, bool & valid) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    valid                 = true;
    if (c < 0x80) return 1;
    size_t        n  = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n  = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;  // no overlong form
        hi = c == 0xED ? 0x9F : 0xBF;  // no surrogate
    } else if (c >= 0xF0 && c <= 0xF4) {
        n  = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;  // no overlong form
        hi = c == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
    }
    valid = false;
    if (n == 0) return 1;
    size_t k = 1;
    for (; k < n && i + k < s.size(); k++) {
        const unsigned char b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return k;
    }
    valid = k == n;
    return k;
}

std::string valid_utf8(const std::string & s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        bool         valid = false;
        const size_t n     = utf8_char(s, i, valid);
        if (valid)
            out.append(s, i, n);
        else
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        i += n;
    }
    return out;
}

std::string human_bytes(uint64_t b) {
    const char * units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double       v       = double(b);
    int          u       = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    return u == 0 ? strfmt("%llu B", (unsigned long long) b) : strfmt("%.2f %s", v, units[u]);
}

}  // namespace reap
