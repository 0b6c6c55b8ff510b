// Small file-system helpers shared by the commands.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

std::string base_name(const std::string & path);  // "a/b/c.gguf" -> "c.gguf"
uint64_t    file_size(const std::string & path);  // 0 when it does not exist
// True when both paths name the same file: for existing files the same device and inode (a
// symlink or a hard link counts as the file), otherwise the same normalised path. Used to refuse
// an output that would overwrite an input, or two outputs with one name.
bool same_file(const std::string & a, const std::string & b);
// The one rule for what a command may write: throws "<output>: is also an input (<input>); ..."
// when an output is the same file as an input or lies inside an input folder (a Hugging Face
// model: config.json, a shard), or an input lies inside an output folder; and "<a>: also given
// as another output (<b>)" when two outputs are one file or one lies inside the other. Empty
// paths are skipped (an output not asked for).
void refuse_clashing_outputs(const std::vector<std::string> & outputs, const std::vector<std::string> & inputs);
// The same for a command with one output.
void refuse_output_over_inputs(const std::string & output, const std::vector<std::string> & inputs);
// Throws "<path>: given twice (also as <earlier>): its tokens would count twice" when two of
// `inputs` are one file (also through a link): data that would be counted twice.
void        refuse_input_given_twice(const std::vector<std::string> & inputs);
std::string iso_utc_now();  // "2026-11-23T16:42:23Z"
// Parses a JSON file; throws "<path>: cannot open <what>" / "<path>: not valid JSON (...)", and
// refuses nesting deeper than k_max_json_depth (no reader can recurse over such a file).
inline constexpr int k_max_json_depth = 64;
nlohmann::json       read_json_file(const std::string & path, const char * what);
// The same rules for JSON text read from inside another file (`origin` names it in errors).
nlohmann::json parse_json_text(const std::string & text, const std::string & origin, const char * what);

}  // namespace reap
