// Small string helpers shared across the library: one definition of each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

bool starts_with(const std::string & s, const char * prefix);
bool ends_with(const std::string & s, const char * suffix);

// A CSV field (RFC 4180): in double quotes, each quote inside doubled; commas and line breaks
// then need nothing more.
std::string csv_quoted(const std::string & s);

// Consecutive runs written compactly: [0,1,2,5] -> "0-2<sep>5"; an empty list is "none".
std::string id_ranges(const std::vector<uint32_t> & ids, const char * sep = ",");
std::string id_ranges(const std::vector<int> & ids, const char * sep = ",");

// Parses a non-negative decimal integer that is exactly the text: "12" yes; "+1", " 1", "01",
// "1abc", "" no. Used for layer keys and ids from JSON, where a lax parse would let two keys
// name one layer.
bool parse_canonical_uint(const std::string & s, uint64_t max, uint64_t & out);

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {""}: an empty item stays, for the caller to refuse.
std::vector<std::string> split_list(const std::string & s, char sep = ',');

// A finite decimal number that is exactly the text: "0.5", "1e-3" yes; "", " 1", "1x", "nan",
// "inf" no. One rule for every numeric list on the command line.
bool parse_number(const std::string & s, double & out);

// `s` as valid UTF-8: each invalid or incomplete sequence (a character cut by a token limit, a
// lone byte token of a byte-fallback vocabulary, an overlong form, a surrogate) becomes U+FFFD,
// one per maximal subpart as Unicode recommends. JSON, CSV and HTML take only valid UTF-8.
std::string valid_utf8(const std::string & s);

// "1.23 MiB" style (binary units), "512 B" below a KiB.
std::string human_bytes(uint64_t bytes);

}  // namespace reap
