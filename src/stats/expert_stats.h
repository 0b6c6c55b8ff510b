// Per-layer, per-expert REAP statistics: the raw sums that make runs mergeable, the derived
// criteria (what each means: stats/criteria.h, README's `reap prune` row), and the stats file in
// the earlier prototype's layout (README, the paragraph on the stats file).
#pragma once

#include "moe/moe_shape.h"
#include "stats/stats_meta.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

// Sums over the tokens routed to each expert of one MoE layer, in double precision.
struct LayerStats {
    uint64_t              total_tokens = 0;  // tokens that passed through the layer
    std::vector<uint64_t> count;             // tokens routed to expert j
    std::vector<double>   gate_sum;          // sum of the applied gate weight g_j(t)
    std::vector<double>   raw_gate_sum;      // sum of the raw router output (ffn_moe_weights)
    std::vector<double>   ean_sum;           // sum of ||f_j(t)||_2
    std::vector<double>   reap_sum;          // sum of g_j(t) * ||f_j(t)||_2
    std::vector<double>   reap_sq_sum;       // sum of (g_j(t) * ||f_j(t)||_2)^2
    std::vector<double>   reap_max;          // max of g_j(t) * ||f_j(t)||_2
    // sum of g_j(t) * ||f_j(t) - ybar_-j(t)||_2, ybar_-j(t) the mean of the other selected experts'
    // outputs weighted by their renormalised gates: how far dropping j moves the layer output
    // when the router renormalises the remaining weights (reap-renorm). Empty when the stats
    // were read from a file that predates it (or merged with one).
    std::vector<double> renorm_sum;
    // Super experts (arXiv 2507.23279): the largest |element| of the expert output f_j(t) over
    // the routed tokens, and the output channel (residual dimension) where it occurred. Maxima
    // merge as maxima. Empty when the stats predate them (or were merged with such a file).
    std::vector<double>   out_max;
    std::vector<uint32_t> out_max_channel;

    // From an importance matrix, not a profile (gguf/imatrix_prune.h): per expert the estimate
    // Σ_j ‖W_down[:, j]‖² · Σx_j² of Σ‖W_down x‖² over its routed tokens (the imatrix criteria).
    // Empty in statistics read from a stats file.
    std::vector<double> imatrix_sum;

    // Expert merging (REAM, M-SMoE; `profile --merge-stats`): two E x E Gram sums, row-major,
    // empty when not collected (or merged with statistics without them).
    //   router_gram[i*E+j] = Σ_t l_i(t) l_j(t) over every token, l the router logits;
    //   output_gram[i*E+j] = Σ_t g_i(t) g_j(t) <f_i(x_t), f_j(x_t)> over the sampled tokens, every
    //   expert run on each, routed or not, g the router's probabilities over all experts.
    // Per-expert mean outputs are not kept: n_embd x E per layer (ARCHITECTURE.md, "Statistics").
    std::vector<double> router_gram, output_gram;
    uint64_t            router_gram_tokens = 0, output_gram_tokens = 0;
    uint32_t            merge_sample_per_batch = 0;  // --merge-stats N; 0 after merging runs of different N

    explicit LayerStats(size_t n_expert = 0);
    size_t n_expert() const { return count.size(); }
    bool   has_renorm() const { return renorm_sum.size() == count.size(); }
    bool   has_imatrix() const { return imatrix_sum.size() == count.size(); }
    bool   has_out_max() const { return out_max.size() == count.size() && out_max_channel.size() == count.size(); }
    bool   has_merge_stats() const {
          return router_gram.size() == count.size() * count.size() && output_gram.size() == router_gram.size();
    }
    // Starts empty (zero) Grams for `profile --merge-stats N`.
    void enable_merge_stats(uint32_t sample_per_batch);

    // One routed token: its gate weights, ||f||, its REAP contribution (normally gate * norm)
    // and its reap-renorm contribution g * ||f - ybar_-j||.
    void add(uint32_t expert, double gate, double raw_gate, double norm, double score, double renorm = 0.0);
    // The largest |f_i| of one routed token's output of `expert`, at channel i (after add()).
    void add_output_max(uint32_t expert, double abs_max, uint32_t channel);
    void merge(const LayerStats & other);  // sums add, max takes max

    // Derived (0 for experts never routed).
    std::vector<double> activation_frequency() const;
    std::vector<double> avg_gate_weight() const;
    std::vector<double> avg_raw_gate_weight() const;
    std::vector<double> ean_mean() const;
    std::vector<double> reap() const;
    std::vector<double> reap_variance() const;
    std::vector<double> reap_renorm() const;  // throws when the sums are absent (has_renorm)
    // Sums over all tokens of the layer (the reference implementation's weighted_ean_sum and
    // ean_sum, normalised by total_tokens): frequency-weighted REAP and EAN.
    std::vector<double> reap_per_token() const;
    std::vector<double> ean_per_token() const;
    std::vector<double> reap_sq_per_token() const;  // Σ (g‖f‖)² / total_tokens
    // imatrix_sum / total_tokens and / count; throw when the sums are absent (has_imatrix).
    std::vector<double>         imatrix_per_token() const;
    std::vector<double>         imatrix_mean() const;
    const std::vector<double> & output_max() const;  // throws when absent (has_out_max)
    uint32_t                    never_activated() const;
    // E x E cosine similarities G_ij / sqrt(G_ii G_jj) of the Grams (0 where a diagonal is 0);
    // throw when the Grams are absent (has_merge_stats).
    std::vector<double> router_similarity() const;
    std::vector<double> output_similarity() const;
};

// The sums part of the way through a profile run, for calibration convergence (milestones.h).
struct StatsMilestone {
    double                    fraction = 0;  // the share of the run's tokens it stands for: 1/8, 1/4, 1/2
    uint64_t                  tokens   = 0;  // tokens decoded when it was taken (batches end where they end)
    std::map<int, LayerStats> layers;
};

struct ExpertStats {
    std::map<int, LayerStats>   layers;      // keyed by llama.cpp layer index
    StatsMeta                   meta;        // model and provenance, under key "_meta"
    std::vector<StatsMilestone> milestones;  // under "_milestones"; empty in older files

    // The stats file: {"<il>": {...}, ..., "_meta": {...}}.
    nlohmann::json to_json() const;
    // Reads a stats file (ours or the prototype's). Non-numeric top-level keys are ignored
    // except "_meta". Without raw sums (prototype files), the sums are rebuilt from the means.
    static ExpertStats from_json(const nlohmann::json & j, const std::string & origin);
    static ExpertStats load(const std::string & path);
    void               save(const std::string & path) const;  // atomic

    // The shape the statistics describe: "_meta" where it records it, the layers and expert
    // count from the statistics themselves. `groups_known`: whether "_meta" records the groups.
    MoeShape shape(bool * groups_known = nullptr) const;

    // Adds another run of the same model (same layers and n_expert); throws otherwise.
    void merge(const ExpertStats & other, const std::string & other_origin);
};

// The name of the provenance key in the stats file.
inline constexpr const char * k_stats_meta_key = "_meta";

// One layer's entry of the stats file; `with_derived`: also the means and frequencies that
// the prototype's readers expect (the sums alone rebuild everything).
nlohmann::json layer_to_json(const LayerStats & L, bool with_derived = true);
// Parses one layer's entry (ours or the prototype's); errors name `origin` and layer `il`.
LayerStats layer_from_json(const nlohmann::json & L, const std::string & origin, const std::string & il);

// Throws when `stats` (read from `stats_path`) was not collected on a model of `shape`: another
// architecture, expert grouping or router weights (where "_meta" and `shape` record them),
// another expert count, another set of MoE layers. The model file's name is not compared:
// statistics of one quantization prune another of the same model.
void check_stats_match(const ExpertStats & stats, const MoeShape & shape, const std::string & stats_path);

}  // namespace reap
