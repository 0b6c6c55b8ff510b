#include "sweep/sweep_choice.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>

namespace reap {

void check_sweep_tolerance(const SweepTolerance & t) {
    const struct {
        const char * option;
        double       value, lo, hi;
        const char * what;
    } bounds[] = {
        {"--max-kl", t.max_kl, 0, INFINITY, "a mean KL divergence in nats per token, 0 or more"},
        {"--max-degeneration", t.max_degeneration, 0, 1, "a share of the continuations, in [0, 1]"},
        {"--min-task-ratio", t.min_task_ratio, 0, 1, "a fraction of the base's accuracy, in [0, 1]"},
    };
    for (const auto & b : bounds) {
        if (!std::isfinite(b.value) || b.value < b.lo || b.value > b.hi)
            fail_usage("%s %g: give %s", b.option, b.value, b.what);
    }
}

double worst_kl_of(const nlohmann::json & entry) {
    if (entry.contains("worst_kl") && entry["worst_kl"].is_number()) return entry["worst_kl"].get<double>();
    return entry.value("kl_mean", 0.0);
}

std::string outside_tolerance(const nlohmann::json & entry, const nlohmann::json & base, const SweepTolerance & t) {
    const double kl = worst_kl_of(entry);
    if (!(kl <= t.max_kl)) return strfmt("worst-domain KL %.4g > %g", kl, t.max_kl);
    if (entry.contains("generation")) {
        // Against the base's own rate: a small model loops on some prompts before any pruning.
        const double d      = entry["generation"].value("degeneration", 0.0);
        const double base_d = base.contains("generation") ? base["generation"].value("degeneration", 0.0) : 0.0;
        if (!(d <= base_d + t.max_degeneration + 1e-12)) {
            return strfmt("degeneration %.3g > the base's %.3g + %g", d, base_d, t.max_degeneration);
        }
    }
    if (entry.contains("tasks") && base.contains("tasks")) {
        for (const auto & [task, score] : entry["tasks"].items()) {
            if (!base["tasks"].contains(task)) continue;
            const double acc = score.value("accuracy", 0.0), base_acc = base["tasks"][task].value("accuracy", 0.0);
            if (base_acc > 0 && !(acc / base_acc >= t.min_task_ratio)) {
                return strfmt("%s accuracy %.3g of the base's < %g", task.c_str(), acc / base_acc, t.min_task_ratio);
            }
        }
    }
    return "";
}

std::optional<size_t> choose_model(const std::vector<nlohmann::json> & models, const nlohmann::json & base,
                                   const SweepTolerance & t) {
    std::optional<size_t> best;
    for (size_t i = 0; i < models.size(); i++) {
        if (!outside_tolerance(models[i], base, t).empty()) continue;
        if (!best) {
            best = i;
            continue;
        }
        const uint64_t size      = models[i].value("file_size", uint64_t(0));
        const uint64_t best_size = models[*best].value("file_size", uint64_t(0));
        if (size < best_size || (size == best_size && worst_kl_of(models[i]) < worst_kl_of(models[*best]))) best = i;
    }
    return best;
}

std::vector<size_t> pareto_frontier(const std::vector<nlohmann::json> & models, const nlohmann::json & base) {
    std::vector<size_t> order(models.size());
    for (size_t i = 0; i < order.size(); i++)
        order[i] = i;
    auto size_of = [](const nlohmann::json & e) { return e.value("file_size", uint64_t(0)); };
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const uint64_t sa = size_of(models[a]), sb = size_of(models[b]);
        if (sa != sb) return sa < sb;
        return worst_kl_of(models[a]) < worst_kl_of(models[b]);
    });
    std::vector<size_t> front;
    double              best_kl = INFINITY;  // the lowest KL of every point at most this size
    for (size_t i : order) {
        const double kl = worst_kl_of(models[i]);
        if (!(kl < best_kl)) continue;  // a smaller (or equal) point is at least as good
        // The base is at its size with KL 0: a point as large or larger is beaten by it.
        if (size_of(models[i]) >= size_of(base) && size_of(base) > 0) continue;
        front.push_back(i);
        best_kl = kl;
    }
    return front;
}

}  // namespace reap
