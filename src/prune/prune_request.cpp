#include "prune/prune_request.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "core/output_lock.h"
#include "core/stop_signal.h"
#include "core/text.h"
#include "moe/expert_budget.h"
#include "prune/convergence.h"
#include "prune/merge_planner.h"

#include <algorithm>
#include <filesystem>
#include <optional>

namespace reap {

std::vector<double> parse_keep_ratios(const std::string & s) {
    if (s.empty()) fail_usage("--keep-ratio: '' names no ratio");
    std::vector<double> out;
    for (const std::string & item : split_list(s)) {
        double r = 0;
        if (!parse_number(item, r))
            fail_usage("--keep-ratio: '%s' is not a number (a fraction like 0.5)", item.c_str());
        // Checked here, where the text is at hand: 1.0000001 printed with %g would read "1".
        if (!(r > 0.0 && r <= 1.0)) fail_usage("--keep-ratio: '%s' is outside (0, 1]", item.c_str());
        out.push_back(r);
    }
    return out;
}

uint64_t parse_split_size(const std::string & s, const char * option) {
    if (s.empty()) return 0;
    size_t used = 0;
    double v    = 0;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    const std::string unit = s.substr(used);
    const double      mul  = unit.empty()  ? 1
                             : unit == "K" ? 1024.0
                             : unit == "M" ? 1048576.0
                             : unit == "G" ? 1073741824.0
                                           : -1;
    if (used == 0 || mul < 0 || !(v > 0) || !(v * mul < 1.8e19)) {
        fail_usage("%s: '%s' is not a size like 500M or 4G", option, s.c_str());
    }
    return uint64_t(v * mul);
}

std::string ratio_output_name(const std::string & pattern, double keep_ratio, bool several) {
    const std::string tag = strfmt("%.2f", keep_ratio);
    const size_t      at  = pattern.find("{keep}");
    if (at != std::string::npos) {
        return pattern.substr(0, at) + tag + pattern.substr(at + 6);
    }
    if (!several) {
        return pattern;
    }
    const size_t dot = pattern.rfind(".gguf");
    return dot == std::string::npos ? pattern + "-keep" + tag : pattern.substr(0, dot) + "-keep" + tag + ".gguf";
}

namespace {

// An unfinished checkpoint, or some of the shards of a sharded run, ranks experts on part of
// the data: refuse unless asked, and say so.
void check_complete(const ExpertStats & stats, const std::string & path, const PruneRequest & r) {
    const std::string part = stats.meta.partial_run();
    if (part.empty()) return;
    if (!r.allow_incomplete) {
        fail("%s: %s; %s, or pass --allow-incomplete", path.c_str(), part.c_str(),
             stats.meta.complete() ? "merge the stats of all shards with 'reap merge'"
                                   : "finish it with 'reap profile --resume'");
    }
    log_warn("%s is %s: the plan ranks experts on part of the calibration data", path.c_str(), part.c_str());
}

std::vector<uint32_t> kept_counts(const PruneRequest & r, const MoeShape & shape) {
    std::vector<uint32_t> counts;
    for (size_t i = 0; i < r.keep_ratios.size(); i++) {
        counts.push_back(kept_count_for_ratio(shape, r.keep_ratios[i]));
        // Two ratios that keep the same count would write one output name twice.
        for (size_t k = 0; k < i; k++) {
            if (counts[k] == counts[i]) {
                fail("--keep-ratio %g and %g both keep %u of %u experts of this model; give each count once",
                     r.keep_ratios[k], r.keep_ratios[i], counts[i], shape.n_expert);
            }
        }
    }
    if (r.keep) counts.push_back(*r.keep);
    if (r.prune) {
        if (*r.prune >= shape.n_expert)
            fail("--prune %u leaves no experts (the model has %u)", *r.prune, shape.n_expert);
        counts.push_back(shape.n_expert - *r.prune);
    }
    return counts;
}

// The super experts to protect (none when turned off); says when the stats cannot tell.
SuperExperts super_expert_protection(const ExpertStats & stats, const std::string & label, const PruneRequest & r) {
    if (!r.protect_super_experts) return {};
    SuperExperts s = find_super_experts(stats);
    if (!s.measured) {
        log_warn(
            "%s has no max_activation (made by an older reap): super experts cannot be found or protected; "
            "profile again to protect them",
            label.c_str());
    }
    for (const auto & e : s.experts)
        log_info("super expert: layer %d expert %u (%s): protected", e.layer, e.expert, s.why(e).c_str());
    return s;
}

// More super experts in a layer (or group) than it keeps: some go, and the user should know.
void warn_unprotected(const Plan & p) {
    for (const auto & pe : p.protected_experts) {
        const auto & kept = p.layers.at(pe.expert.layer).kept;
        if (!std::binary_search(kept.begin(), kept.end(), pe.expert.expert)) {
            log_warn("keeping %u experts drops super expert %u of layer %d (more super experts than kept slots)",
                     p.expert_count(), pe.expert.expert, pe.expert.layer);
        }
    }
}

// How much of the drop set half the calibration tokens already picked, in the log and the plan;
// with several calibration sets, of each set on its own ({"sets": [...]} in the plan).
void report_convergence(Plan & p, const CalibrationSets & sets, const MoeShape & shape, const PruneRequest & r) {
    if (!criterion_info(r.criterion).describes_model) return;
    nlohmann::json per_set = nlohmann::json::array();
    for (const auto & set : sets.sets) {
        const Convergence c    = drop_set_convergence(set.stats, shape, r.criterion, p.expert_count(), r.seed);
        const std::string from = sets.sets.size() > 1 ? set.path + ": " : "";
        if (c.moving) {
            log_warn("%skeeping %u: %s", from.c_str(), p.expert_count(), c.summary().c_str());
        } else {
            log_info("%skeeping %u: %s", from.c_str(), p.expert_count(), c.summary().c_str());
        }
        nlohmann::json j = c.to_json();
        if (sets.sets.size() == 1) p.convergence = j;
        j["stats"] = set.path;
        per_set.push_back(j);
    }
    if (sets.sets.size() > 1) p.convergence = {{"sets", per_set}};
}

// --merge's combinations: one stats file and the method's own ranking (not a saved plan, another
// criterion or several calibration sets); the merge options only with --merge.
void check_merge_request(const PruneRequest & r) {
    if (r.merge_method.empty()) {
        if (r.merge_group_size != 0 || r.merge_align != "weights")
            fail_usage("--merge-align and --merge-group-size shape a merge; give --merge");
        return;
    }
    check_merge_options(merge_options(r));
    if (!r.plan.empty())
        fail_usage("--merge plans from --stats; a saved --plan carries its own map of experts: do not combine them");
    if (r.criterion != Criterion::reap) {
        fail_usage(
            "--merge %s ranks experts by its own rule (ream: reap, msmoe: frequency); do not give --criterion %s",
            r.merge_method.c_str(), criterion_name(r.criterion));
    }
    if (r.stats.size() > 1)
        fail_usage("--merge takes one --stats file (its merge statistics), not %zu", r.stats.size());
}

}  // namespace

MergeOptions merge_options(const PruneRequest & r) { return {r.merge_method, r.merge_align, r.merge_group_size}; }

void check_prune_request(const PruneRequest & r) {
    if (r.output.empty() && !r.dry_run) fail_usage("give -o/--output (or --dry-run)");
    check_merge_request(r);
    if (!r.imatrix_out.empty() && r.imatrix.empty())
        fail_usage("--imatrix-out names the pruned --imatrix; give --imatrix");
    const bool from_imatrix = criterion_info(r.criterion).from_imatrix;
    if (r.plan.empty() && from_imatrix) {
        if (r.imatrix.empty()) {
            fail_usage("--criterion %s ranks experts from an importance matrix: give --imatrix FILE",
                       criterion_name(r.criterion));
        }
        if (!r.stats.empty()) {
            fail_usage("--criterion %s ranks experts from --imatrix alone; do not combine it with --stats",
                       criterion_name(r.criterion));
        }
    }
    if (r.plan.empty() && r.stats.empty() && !r.imatrix.empty() && !from_imatrix) {
        fail_usage("--criterion %s reads --stats; with --imatrix alone choose --criterion imatrix-sum or imatrix-mean",
                   criterion_name(r.criterion));
    }
    if (!r.plan.empty()) {
        if (!r.stats.empty() || !r.keep_ratios.empty() || r.keep || r.prune) {
            fail_usage(
                "--plan already fixes the experts to keep; do not combine it with --stats/--keep-ratio/--keep/--prune");
        }
        return;
    }
    if (!from_imatrix) check_stats_options(r.stats, r.stats_weights, r.stats_combine);
    const int n_amounts = int(!r.keep_ratios.empty()) + int(r.keep.has_value()) + int(r.prune.has_value());
    if (n_amounts != 1) fail_usage("give exactly one of --keep-ratio, --keep, --prune");
}

std::string default_imatrix_output(const std::string & output) {
    const std::string ext = ".gguf";
    return ends_with(output, ext.c_str()) ? output.substr(0, output.size() - ext.size()) + ".imatrix.gguf"
                                          : output + ".imatrix.gguf";
}

std::string imatrix_output_name(const PruneRequest & r, const std::string & output, double keep_ratio, bool several) {
    if (r.imatrix.empty() || output.empty()) return "";
    if (!r.imatrix_out.empty()) return ratio_output_name(r.imatrix_out, keep_ratio, several);
    return default_imatrix_output(output);
}

namespace {

// The plans of an imatrix criterion: the scores of `stats` (Model::imatrix_stats), no super-expert
// protection (an importance matrix holds no output maxima), no convergence (no milestones).
std::vector<Plan> imatrix_plans(const PruneRequest & r, const MoeShape & shape, const ExpertStats & stats) {
    if (r.protect_super_experts) {
        log_info("%s: an importance matrix has no expert output maxima: super experts are not protected",
                 r.imatrix.c_str());
    }
    std::vector<Plan> plans;
    for (uint32_t kept : kept_counts(r, shape)) {
        Plan p               = make_plan(stats, shape, r.criterion, kept, r.seed);
        p.model              = base_name(r.model);
        p.stats              = r.imatrix;
        p.router_fingerprint = shape.router_fingerprint;
        if (!shape.router_norms.empty()) p.router_norms = {*shape.router_norms.begin()};
        plans.push_back(std::move(p));
    }
    return plans;
}

}  // namespace

std::vector<Plan> plans_for_request(const PruneRequest & r, const MoeShape & shape, const ExpertStats * imatrix_stats) {
    if (!r.plan.empty()) {
        Plan p = Plan::load(r.plan);
        check_plan(p, shape, r.plan);
        return {p};
    }
    if (criterion_info(r.criterion).from_imatrix) {
        if (imatrix_stats == nullptr)
            fail("--criterion %s: no importance matrix was read", criterion_name(r.criterion));
        return imatrix_plans(r, shape, *imatrix_stats);
    }
    const auto            counts = kept_counts(r, shape);
    const CalibrationSets sets   = load_calibration_sets(r.stats, r.stats_weights, r.stats_combine);
    for (const auto & set : sets.sets) {
        check_stats_match(set.stats, shape, set.path);
        check_complete(set.stats, set.path, r);
    }
    const ExpertStats & stats = sets.merged;
    // --merge: the similarities first (a stats file without them is refused before anything else).
    std::map<int, LayerSimilarity> sim;
    if (!r.merge_method.empty()) sim = merge_similarities(stats, sets.label());
    const std::map<int, std::vector<double>> scores  = sets.scores(r.criterion, r.seed);
    const SuperExperts                       supers  = super_expert_protection(stats, sets.label(), r);
    const SuperExperts *                     protect = r.protect_super_experts ? &supers : nullptr;
    std::vector<Plan>                        plans;
    for (uint32_t kept : counts) {
        Plan p = r.merge_method.empty() ? make_plan(stats, shape, r.criterion, kept, r.seed, protect, &scores)
                                        : make_merge_plan(stats, shape, sim, merge_options(r), kept, r.seed, protect);
        warn_unprotected(p);
        // ream's centroids are REAP's kept experts: its convergence is REAP's; msmoe ranks by frequency.
        if (r.merge_method != "msmoe") report_convergence(p, sets, shape, r);
        p.model              = base_name(r.model);
        p.stats              = sets.label();
        p.calibration_sets   = sets.to_json();
        p.router_fingerprint = shape.router_fingerprint;
        if (!shape.router_norms.empty())
            p.router_norms = {*shape.router_norms.begin()};  // one layer tells models apart
        plans.push_back(std::move(p));
    }
    return plans;
}

std::vector<PruneJob> planned_jobs(const PruneOutcome & out) {
    std::vector<PruneJob> jobs;
    for (const auto & o : out.outputs)
        jobs.push_back(o.job);
    return jobs;
}

void refuse_prune_outputs_over_inputs(const PruneRequest & r, const PruneOutcome & out,
                                      std::vector<std::string> model_inputs) {
    std::vector<std::string> outputs = {r.plan_out};
    if (!r.dry_run) {
        for (const auto & o : out.outputs) {
            outputs.insert(outputs.end(), o.files.begin(), o.files.end());
            outputs.push_back(o.imatrix_file);
        }
    }
    model_inputs.insert(model_inputs.end(), r.stats.begin(), r.stats.end());
    model_inputs.push_back(r.plan);
    model_inputs.push_back(r.imatrix);
    refuse_clashing_outputs(outputs, model_inputs);
}

void finish_plan_report(const PruneRequest & r, PruneOutcome & out) {
    stop_point("planning (nothing was written)");
    nlohmann::json report = nlohmann::json::array();
    for (const auto & o : out.outputs) {
        nlohmann::json j   = o.job.plan.to_json();
        j["output"]        = o.job.output;
        j["original_size"] = out.original_size;
        j["output_size"]   = o.output_size;
        if (!r.output.empty()) j["output_files"] = o.files;
        if (!o.imatrix_file.empty()) j["imatrix_file"] = o.imatrix_file;
        report.push_back(j);
    }
    out.plan_report = report.size() == 1 ? report[0] : nlohmann::json{{"plans", report}};
    if (!r.plan_out.empty()) write_file_atomic(r.plan_out, out.plan_report.dump(1) + "\n");
}

namespace {

bool output_folder_exists(const std::string & output) {
    const std::filesystem::path dir = std::filesystem::path(output).parent_path();
    std::error_code             ec;
    return dir.empty() || std::filesystem::is_directory(dir, ec);
}

}  // namespace

PruneOutcome run_prune(const PruneRequest & r, const Model & m) {
    // Ctrl-C or `kill` stops the copy at the next buffer, the temporaries go, and reap exits 130
    // (core/stop_signal.h); a signal during the final renames waits for them.
    StopSignalGuard signals;
    check_prune_request(r);
    m.check_split(r.split_max_bytes);
    PruneOutcome out;
    out.original_size = m.size();
    // An importance matrix of another model is refused before anything is written.
    if (!r.imatrix.empty()) m.check_imatrix(r.imatrix);
    std::optional<ExpertStats> imatrix_stats;
    if (r.plan.empty() && criterion_info(r.criterion).from_imatrix) imatrix_stats = m.imatrix_stats(r.imatrix);
    const std::vector<Plan> plans   = plans_for_request(r, m.shape(), imatrix_stats ? &*imatrix_stats : nullptr);
    const bool              several = plans.size() > 1;
    for (const auto & p : plans) {
        PlannedOutput o;
        o.job = {p, r.output.empty() ? "" : ratio_output_name(r.output, p.keep_ratio, several), r.split_max_bytes};
        o.job.imatrix     = r.imatrix;
        o.job.imatrix_out = imatrix_output_name(r, o.job.output, p.keep_ratio, several);
        o.imatrix_file    = o.job.imatrix_out;
        o.output_size     = m.pruned_size(p, r.split_max_bytes);
        if (!r.output.empty()) o.files = m.output_files(o.job);
        out.outputs.push_back(std::move(o));
    }
    refuse_prune_outputs_over_inputs(r, out, m.input_paths());
    finish_plan_report(r, out);
    if (r.dry_run) return out;
    // One writer for one output (a file or a split set): two prunes into it at once would mix parts.
    // Where the output's folder is missing, the writer says so, naming the output.
    std::optional<OutputLock> lock;
    if (output_folder_exists(r.output)) lock.emplace(OutputLock::path_for_file(r.output), r.output);
    m.write_pruned(planned_jobs(out), r.show_progress);
    out.wrote_models = true;
    return out;
}

}  // namespace reap
