#include "sweep/sweep.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "eval/domains.h"
#include "eval/eval_inputs.h"
#include "eval/eval_output.h"
#include "eval/evaluator.h"
#include "gguf/gguf_file.h"
#include "llama/context_size.h"
#include "llama/llama_runtime.h"
#include "model/open_model.h"
#include "moe/expert_budget.h"
#include "profile/profiler.h"
#include "stats/criteria.h"
#include "sweep/sweep_folder.h"
#include "sweep/sweep_html.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace reap {

namespace {

// One pruned model of the sweep.
struct SweepPoint {
    Criterion   criterion;
    double      prune_ratio;
    std::string path;
};

std::string point_file_name(Criterion c, double prune_ratio) {
    return strfmt("%s-%g.gguf", criterion_name(c), std::round(prune_ratio * 1000) / 10);
}

// The points of the sweep, criterion by criterion, in the order of --ratios. Ratios that remove
// the same number of experts are one point (the first ratio names it), said once: two of them
// would prune one file twice, and deleting the non-answers would delete the answer.
std::vector<SweepPoint> sweep_points(const SweepOptions & o, const MoeShape & shape) {
    std::vector<double>   ratios;
    std::vector<uint32_t> counts;
    for (double r : o.prune_ratios) {
        const uint32_t kept = kept_count_for_ratio(shape, 1.0 - r);
        const auto     same = std::find(counts.begin(), counts.end(), kept);
        if (same != counts.end()) {
            log_warn("--ratios %g and %g both remove %u of %u experts: one point",
                     ratios[size_t(same - counts.begin())], r, shape.n_expert - kept, shape.n_expert);
            continue;
        }
        ratios.push_back(r);
        counts.push_back(kept);
    }
    std::vector<SweepPoint> points;
    for (const std::string & c : o.criteria) {
        const Criterion crit = parse_criterion(c);
        for (double r : ratios) {
            const SweepPoint p{crit, r, o.out_dir + "/" + point_file_name(crit, r)};
            for (const SweepPoint & q : points) {
                if (q.path == p.path) {
                    fail(
                        "--ratios %g and %g remove different numbers of experts but name one file %s; give ratios "
                        "further apart",
                        q.prune_ratio, r, p.path.c_str());
                }
            }
            points.push_back(p);
        }
    }
    return points;
}

std::vector<std::string> profile_once(const SweepOptions & o) {
    if (!o.stats.empty()) return o.stats;
    ProfileOptions p;
    static_cast<LlamaFlags &>(p) = o;
    p.model                      = o.model;
    p.data                       = o.calib;
    p.output                     = o.out_dir + "/stats.json";
    p.max_samples                = o.max_samples;
    p.resume                     = o.resume && fs::exists(p.output);
    p.progress                   = o.progress;  // the longest step on a large model: its own line
    const ProfileResult r        = run_profile(p);
    // The profile wrote its checkpoint; the sweep's guard holds the signal.
    if (r.interrupted) stop_point(("profiling (checkpoint saved to " + p.output + "; continue with --resume)").c_str());
    return {p.output};
}

// The kept experts of every layer that a GGUF written by `reap prune` records.
std::map<int, std::vector<uint64_t>> kept_in_file(const GgufFile & f) {
    std::map<int, std::vector<uint64_t>> kept;
    const std::string                    prefix = "reap.prune.layer.";
    for (int64_t i = 0; i < gguf_get_n_kv(f.meta()); i++) {
        const std::string key = gguf_get_key(f.meta(), i);
        if (key.rfind(prefix, 0) == 0 && key.size() > prefix.size() + 5 && key.substr(key.size() - 5) == ".kept") {
            kept[std::stoi(key.substr(prefix.size()))] = f.get_uint_array(key);
        }
    }
    return kept;
}

// Prunes one point, or with --resume reuses the file already there when it holds the same plan.
void prune_point(const SweepOptions & o, const std::vector<std::string> & stats, const SweepPoint & p) {
    PruneRequest r;
    r.model         = o.model;
    r.stats         = stats;
    r.stats_weights = o.stats_weights;
    r.stats_combine = o.stats_combine;
    r.keep_ratios   = {1.0 - p.prune_ratio};
    r.criterion     = p.criterion;
    r.output        = p.path;
    r.show_progress = false;
    if (fs::exists(p.path)) {
        if (!o.resume) fail("%s: exists; continue the sweep with --resume, or choose another -o", p.path.c_str());
        PruneRequest dry           = r;
        dry.dry_run                = true;
        dry.output                 = "";
        const PruneOutcome planned = run_prune(dry);
        const Plan &       plan    = planned.outputs.at(0).job.plan;
        const GgufFile     f       = GgufFile::open(p.path);
        const auto         kept    = kept_in_file(f);
        bool               same    = f.get_str("reap.prune.source") == base_name(o.model) && !kept.empty();
        for (const auto & [il, lp] : plan.layers) {
            const auto it = kept.find(il);
            same = same && it != kept.end() && std::vector<uint64_t>(lp.kept.begin(), lp.kept.end()) == it->second;
        }
        if (!same) {
            fail(
                "%s: is not the %s plan of %s at this ratio (another model or other statistics); remove it or choose "
                "another -o",
                p.path.c_str(), criterion_name(p.criterion), base_name(o.model).c_str());
        }
        return;
    }
    run_prune(r);
}

EvalOptions eval_options(const SweepOptions & o, int n_ctx) {
    EvalOptions e;
    static_cast<LlamaFlags &>(e) = o;
    e.base                       = o.model;
    // One base-logits file per domain in OUTDIR/base-logits/ (NAME.lgt): written once, reused
    // by --resume after eval checks they were made from this base.
    const std::string logits_dir = o.out_dir + "/base-logits";
    std::error_code   ec;
    fs::create_directories(logits_dir, ec);
    if (ec) fail("%s: cannot create the folder (%s)", logits_dir.c_str(), ec.message().c_str());
    e.domains    = resolve_domains(o.data, {logits_dir});
    e.generation = o.generation;
    e.tasks      = o.tasks;
    e.n_ctx      = n_ctx;
    e.max_chunks = o.max_chunks;
    e.progress   = o.progress;
    return e;
}

}  // namespace

void check_sweep_options(const SweepOptions & o) {
    if (o.model.empty()) fail_usage("give the model to sweep with -m MODEL.gguf");
    if (o.calib.empty() == o.stats.empty())
        fail_usage("give calibration data (--calib FILE) or statistics (--stats FILE), one of them");
    if (o.data.empty()) fail_usage("give held-out text to evaluate on with --data [NAME=]FILE");
    if (o.out_dir.empty()) fail_usage("give the output folder with -o OUTDIR");
    if (o.prune_ratios.empty()) fail_usage("--ratios: give at least one fraction of experts to remove");
    for (double r : o.prune_ratios) {
        if (!(r > 0 && r < 1)) fail_usage("--ratios: %g is not a fraction of experts to remove, in (0, 1)", r);
    }
    if (o.criteria.empty()) fail_usage("--criteria: give at least one criterion");
    for (const std::string & c : o.criteria)
        parse_criterion(c);
    check_sweep_tolerance(o.tolerance);
    check_prompt_budget_option(o.generation, o.n_ctx);
}

SweepResult run_sweep(const SweepOptions & o) {
    check_sweep_options(o);
    // One guard for the whole sweep: a signal at any moment, also between two steps, stops it at
    // the next stop point (exit 130), never lost and never killing it without a word.
    StopSignalGuard               signals;
    const auto                    model    = open_model(o.model);
    const std::vector<SweepPoint> points   = sweep_points(o, model->shape());
    const nlohmann::json          identity = sweep_identity(o.model, o.calib, o.stats);
    const SweepFolder             folder(o.out_dir, identity, o.resume);
    // Every input of the eval (held-out texts, task files, prompts) is read and checked now,
    // before the profile: a task too long for -c failed the sweep after every model's eval.
    const int  n_ctx = resolve_ctx_size(o.n_ctx, o.model);  // one warning when beyond the trained context
    EvalInputs eval  = check_eval_inputs(eval_options(o, n_ctx));
    stop_point("checking the output folder (nothing was written)");

    // One line over the whole sweep: the profile, each prune, the base's and each model's eval.
    const uint64_t steps = (o.stats.empty() ? 1 : 0) + 2 * points.size() + 1;
    Progress       progress("sweep", steps, "steps", o.progress);
    uint64_t       done = 0;
    progress.update(done, o.stats.empty() ? "profiling" : "", true);
    const std::vector<std::string> stats = profile_once(o);
    done += o.stats.empty() ? 1 : 0;
    stop_point("profiling");
    for (const SweepPoint & p : points) {
        progress.update(done, "pruning " + base_name(p.path), true);
        prune_point(o, stats, p);
        stop_point(("pruning " + base_name(p.path)).c_str());
        progress.update(++done, "", true);
    }

    for (const SweepPoint & p : points)
        eval.options.pruned.push_back(p.path);
    // One run for all models: the base is loaded once for its logits, continuations and tasks.
    progress.update(done, "evaluating the base and " + std::to_string(points.size()) + " models", true);
    const nlohmann::json        rows = eval_json(run_eval(eval), eval.options.convention);
    const nlohmann::json        base = rows.at(0);
    std::vector<nlohmann::json> models;
    for (size_t i = 0; i < points.size(); i++) {
        nlohmann::json entry = rows.at(i + 1);
        entry["criterion"]   = criterion_name(points[i].criterion);
        entry["prune_ratio"] = points[i].prune_ratio;
        entry["keep_ratio"]  = 1.0 - points[i].prune_ratio;
        entry["path"]        = points[i].path;
        models.push_back(entry);
    }
    done += points.size() + 1;
    progress.update(done);
    progress.finish();
    stop_point("evaluating");

    SweepResult res;
    const auto  best = choose_model(models, base, o.tolerance);
    for (size_t i = 0; i < models.size(); i++) {
        const std::string why         = outside_tolerance(models[i], base, o.tolerance);
        models[i]["within_tolerance"] = why.empty();
        if (!why.empty()) models[i]["outside_tolerance"] = why;
        models[i]["chosen"] = best && *best == i;
    }
    res.chosen_is_base = !best;
    res.chosen         = best ? points[*best].path : o.model;
    res.report         = {{"identity", identity},
                          {"base", base},
                          {"models", models},
                          {"tolerance",
                           {{"max_kl", o.tolerance.max_kl},
                            {"max_degeneration", o.tolerance.max_degeneration},
                            {"min_task_ratio", o.tolerance.min_task_ratio}}},
                          {"eval_ctx", n_ctx},
                          {"domains", o.data},
                          {"chosen", res.chosen}};
    std::error_code ec;
    write_file_atomic(o.out_dir + "/sweep.json",
                      res.report.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    write_file_atomic(o.out_dir + "/sweep.html", sweep_html(res.report));
    if (!o.keep_all) {
        for (size_t i = 0; i < points.size(); i++) {
            if ((!best || *best != i) && points[i].path != res.chosen) fs::remove(points[i].path, ec);
        }
    }
    return res;
}

}  // namespace reap
