// Which pruned model is the answer of a sweep: the smallest file within the user's tolerance.
// Pure functions over the models' eval entries (the JSON `reap eval -o` writes), so the rule is
// tested without running a model.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace reap {

struct SweepTolerance {
    double max_kl = 0.5;  // worst-domain mean KL divergence base -> model (nats per token)
    // Share of degenerate continuations above the base's own share, checked where the entries
    // have a generation section.
    double max_degeneration = 0.1;
    // Task accuracy / the base's, per task, checked where the entries have a tasks section.
    double min_task_ratio = 0.9;
};

// Throws UsageError naming the option when a tolerance is not a finite number in its range:
// --max-kl >= 0 (nats), --max-degeneration and --min-task-ratio in [0, 1].
void check_sweep_tolerance(const SweepTolerance & t);

// Why `entry` is outside the tolerance ("worst-domain KL 0.61 > 0.5"), or "" when it is within.
// `base` is the base model's entry (task accuracies are compared with it).
std::string outside_tolerance(const nlohmann::json & entry, const nlohmann::json & base, const SweepTolerance & t);

// The worst-domain KL of an entry: `worst_kl` when present, else `kl_mean`.
double worst_kl_of(const nlohmann::json & entry);

// Index into `models` of the smallest file within tolerance (ties: lower worst-domain KL), or
// nothing when none is.
std::optional<size_t> choose_model(const std::vector<nlohmann::json> & models, const nlohmann::json & base,
                                   const SweepTolerance & t);

// The size/quality frontier over every point, pruned, quantized or both: the indices into
// `models` of the points no other point (nor the base, at its size and KL 0) beats on both file
// size and worst-domain KL (smaller or equal on both, smaller on one), by increasing size.
std::vector<size_t> pareto_frontier(const std::vector<nlohmann::json> & models, const nlohmann::json & base);

}  // namespace reap
