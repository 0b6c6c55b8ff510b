// "_meta" of a stats file: which model the statistics describe and how they were collected.
// The one type for it: parsed strictly (types checked, errors name the file), written back
// with unknown keys preserved, merged for `reap merge`, and the one same-model check used by
// prune, report, merge and profile --resume. Prototype stats files have no "_meta": every
// field is optional.
#pragma once

#include "moe/moe_shape.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reap {

struct StatsProgress {
    uint64_t samples_done = 0;
    uint64_t tokens_done  = 0;
    bool     complete     = true;  // false: a checkpoint of an unfinished run
};

// `reap profile --shard i/N`: which of the N deterministic parts of the calibration data a run
// (or a merge of some of the runs) covers; `data` identifies the whole selection being sharded.
struct StatsShard {
    uint32_t              count = 0;
    std::vector<uint32_t> indices;  // 1-based, ascending
    std::string           data;     // fingerprint of the tokens of all N shards together
};

// `reap profile --imatrix`: the importance matrix collected over the same tokens, written beside
// the statistics (gguf/imatrix_file.h) and saved with each checkpoint.
struct StatsImatrix {
    std::string file;  // relative to the stats file's folder, or absolute
    std::string hash;  // imatrix_hash of the file written with these statistics, 16 hex digits
};

struct StatsMeta {
    // What identifies the model.
    std::optional<std::string> architecture;
    std::optional<std::string> model;       // base name of the model file
    std::optional<std::string> model_path;  // as given to profile
    std::optional<uint64_t>    model_size;  // bytes of the model file (all splits)
    // The model by content (gguf/content_id.h): a copy or a rename is the same model, another
    // fine-tune of the same name and size is not. Compared instead of name and size where both
    // files record it.
    std::optional<std::string> model_content_id;
    std::optional<uint32_t>    n_layer, n_expert, n_expert_used;
    std::optional<uint32_t>    n_expert_groups, n_group_used;  // recorded since grouped models are planned per group
    std::optional<uint32_t>    experts_per_chunk;  // GroveMoE's adjugate groups (planned per group), when present
    std::optional<std::vector<int>> moe_layers;
    std::optional<std::string>      router_fingerprint;  // same shape, other weights: differs
    std::optional<RouterNorms>      router_norms;        // per layer router row norms: across formats
    // Provenance.
    std::optional<std::string>   tool, date;
    std::optional<std::string>   fingerprint;  // of the tokenized calibration data and options (resume)
    nlohmann::json               calibration;  // array of {"file", "samples", "tokens", ...}, or null
    nlohmann::json               options;      // object of profile options, or null
    std::optional<uint64_t>      samples, tokens;
    std::optional<bool>          gate_applied_before_expert;
    std::vector<std::string>     merged_from;
    std::optional<StatsProgress> progress;
    std::optional<StatsShard>    shard;
    std::optional<StatsImatrix>  imatrix;
    // `reap profile --merge-stats N`: the layers hold the merge Grams, N tokens sampled per
    // micro-batch for the expert-output Gram (0 after merging runs of different N).
    std::optional<uint32_t> merge_stats;
    nlohmann::json          unknown = nlohmann::json::object();  // keys of other tools, written back as read

    // Reads "_meta" strictly; `origin` names the file in errors.
    static StatsMeta parse(const nlohmann::json & j, const std::string & origin);
    nlohmann::json   to_json() const;
    // The value of `key` as written in the file (null when absent): for display.
    nlohmann::json operator[](const std::string & key) const;

    // The identity fields of a model with `shape` in the file `model_path` of `size` bytes.
    static StatsMeta for_model(const MoeShape & shape, const std::string & model_path, uint64_t size);
    // The shape the stats were collected on, as far as recorded (n_expert from `fallback_n_expert`
    // when not). Says through `groups_known` whether the expert groups are recorded.
    MoeShape shape(uint32_t fallback_n_expert, bool * groups_known = nullptr) const;

    bool complete() const { return !progress || progress->complete; }
    // "" for the statistics of a whole profile run; else what part of one they cover: "a
    // checkpoint of an unfinished profile run (N samples, M tokens done)" or "shard 1 of 3 of a
    // sharded profile run (shards 2-3 missing)". What prune refuses without --allow-incomplete
    // and what report shows.
    std::string partial_run() const;
};

// Router row norms as stats files and plans write them ({"layer": [norm, ...]}), every value a
// finite float; nullopt for anything else.
std::optional<RouterNorms> parse_router_norms(const nlohmann::json & v);

// How much of the model two stats files must share.
enum class SameModel {
    shape,  // architecture, layers, experts, experts per token, groups, MoE layers: runs to compare
    file,   // and the model file (content id, else name and size) where both record it: runs to add up or resume
};

// Throws when `b` (read from `b_path`) describes another model than `a` at `level`, naming the
// first field that differs. Fields only one side records are not compared. The router
// fingerprint is compared at both levels: it tells weights apart across quantizations.
// `a_is` names `a` in the message ("the first file", "the model being profiled").
void check_same_model(const StatsMeta & a, const StatsMeta & b, const std::string & b_path,
                      SameModel level = SameModel::file, const char * a_is = "the first file");

}  // namespace reap
