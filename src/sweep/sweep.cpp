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
#include "gguf/imatrix_file.h"
#include "llama/context_size.h"
#include "llama/llama_runtime.h"
#include "llama/quantize.h"
#include "model/open_model.h"
#include "moe/expert_budget.h"
#include "profile/profiler.h"
#include "prune/merge_planner.h"
#include "prune/prune_request.h"
#include "stats/criteria.h"
#include "sweep/sweep_folder.h"
#include "sweep/sweep_html.h"
#include "sweep/sweep_points.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace reap {

namespace {

// "reap-25.gguf" -> "reap-25-Q4_0.gguf"; the base -> "base-Q4_0.gguf".
std::string quant_path(const std::string & out_dir, const std::string & source_file, const std::string & type) {
    const std::string stem = source_file.substr(0, source_file.size() - 5);
    return out_dir + "/" + stem + "-" + type + ".gguf";
}

// The quant types as llama-quantize's table names them (any case given).
std::vector<std::string> quant_names(const SweepOptions & o) {
    std::vector<std::string> names;
    for (const std::string & t : o.quant)
        names.push_back(parse_quant_type(t).name);
    return names;
}

// The base's importance matrix: collected by the sweep's profile, or --imatrix with --stats.
std::string base_imatrix_path(const SweepOptions & o) {
    if (o.quant.empty()) return "";
    if (o.stats.empty()) return o.out_dir + "/imatrix.gguf";
    return o.imatrix;
}

std::vector<QuantPoint> quant_points(const SweepOptions & o, const std::vector<SweepPoint> & points) {
    std::vector<QuantPoint> q;
    for (const std::string & t : quant_names(o))
        q.push_back({std::nullopt, t, quant_path(o.out_dir, "base.gguf", t)});
    for (size_t i = 0; i < points.size(); i++) {
        for (const std::string & t : quant_names(o))
            q.push_back({i, t, quant_path(o.out_dir, base_name(points[i].path), t)});
    }
    return q;
}

// Tokens per micro-batch the sweep's profile samples for the merge statistics when there are
// merged points (profile --merge-stats N).
constexpr uint32_t k_sweep_merge_stats = 16;

std::string point_file_name(const std::string & label, double prune_ratio) {
    return strfmt("%s-%g.gguf", label.c_str(), std::round(prune_ratio * 1000) / 10);
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
    // The criteria's points, then the merging methods' (ranked by their own rules: the criterion is unused).
    std::vector<std::pair<Criterion, std::string>> kinds;
    for (const std::string & c : o.criteria)
        kinds.push_back({parse_criterion(c), ""});
    for (const std::string & m : o.merge)
        kinds.push_back({Criterion::reap, m});
    std::vector<SweepPoint> points;
    for (const auto & [crit, method] : kinds) {
        for (double r : ratios) {
            SweepPoint p{crit, r, "", method};
            p.path = o.out_dir + "/" + point_file_name(point_label(p), r);
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
    p.imatrix                    = base_imatrix_path(o);  // with quant types: the base's importance matrix
    p.merge_stats                = o.merge.empty() ? 0 : k_sweep_merge_stats;  // what merged points plan from
    p.max_samples                = o.max_samples;
    p.resume                     = o.resume && fs::exists(p.output);
    p.progress                   = o.progress;  // the longest step on a large model: its own line
    const ProfileResult r        = run_profile(p);
    // The profile wrote its checkpoint; the sweep's guard holds the signal.
    if (r.interrupted) stop_point(("profiling (checkpoint saved to " + p.output + "; continue with --resume)").c_str());
    return {p.output};
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
    for (const std::string & c : o.criteria) {
        if (criterion_info(parse_criterion(c)).from_imatrix) {
            fail_usage(
                "--criteria: %s ranks from an importance matrix alone, and the sweep ranks from its "
                "statistics; prune with it: reap prune --imatrix FILE --criterion %s",
                c.c_str(), c.c_str());
        }
    }
    for (size_t i = 0; i < o.merge.size(); i++) {
        check_merge_options({o.merge[i], "weights", 0});  // a usage error naming the methods
        if (std::find(o.merge.begin(), o.merge.begin() + long(i), o.merge[i]) != o.merge.begin() + long(i))
            fail_usage("--merge: %s is given twice", o.merge[i].c_str());
    }
    if (!o.merge.empty() && o.stats.size() > 1) {
        fail_usage("--merge plans from one stats file; give one --stats (profiled with --merge-stats), or --calib");
    }
    for (size_t i = 0; i < o.quant.size(); i++) {
        const QuantType & t = parse_quant_type(o.quant[i]);
        for (size_t j = 0; j < i; j++) {
            if (parse_quant_type(o.quant[j]).ftype == t.ftype)
                fail_usage("--quant: %s and %s are one type; give it once", o.quant[j].c_str(), t.name);
        }
    }
    if (!o.imatrix.empty() && o.quant.empty())
        fail_usage("--imatrix is the importance matrix of the quantized points: give --quant TYPE with it");
    if (!o.imatrix.empty() && o.stats.empty())
        fail_usage("--imatrix goes with --stats: with --calib the sweep's profile collects the importance matrix");
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
    const std::vector<QuantPoint> qpoints  = quant_points(o, points);
    const std::string             imatrix  = base_imatrix_path(o);
    const nlohmann::json          identity = sweep_identity(o.model, o.calib, o.stats, quant_names(o), o.imatrix);
    // --imatrix is read and checked against the model now, before any work: a broken file or
    // another model's fails the sweep here, not after the prunes.
    if (!o.imatrix.empty()) check_imatrix_fits(read_imatrix(o.imatrix), o.imatrix, o.model);
    const SweepFolder folder(o.out_dir, identity, o.resume);
    // Every input of the eval (held-out texts, task files, prompts) is read and checked now,
    // before the profile: a task too long for -c failed the sweep after every model's eval.
    const int  n_ctx = resolve_ctx_size(o.n_ctx, o.model);  // one warning when beyond the trained context
    EvalInputs eval  = check_eval_inputs(eval_options(o, n_ctx));
    stop_point("checking the output folder (nothing was written)");
    if (!qpoints.empty() && imatrix.empty()) {
        log_warn("no importance matrix (--imatrix FILE with --stats): the quantized points are quantized without one");
    }

    // One line over the whole sweep: the profile, each prune and quantization, the base's and each model's eval.
    const size_t   n_models = points.size() + qpoints.size();
    const uint64_t steps    = (o.stats.empty() ? 1 : 0) + points.size() + qpoints.size() + n_models + 1;
    Progress       progress("sweep", steps, "steps", o.progress);
    uint64_t       done = 0;
    progress.update(done, o.stats.empty() ? "profiling" : "", true);
    const std::vector<std::string> stats = profile_once(o);
    done += o.stats.empty() ? 1 : 0;
    stop_point("profiling");
    for (const SweepPoint & p : points) {
        progress.update(done, "pruning " + base_name(p.path), true);
        prune_point(o, stats, p, imatrix);
        stop_point(("pruning " + base_name(p.path)).c_str());
        progress.update(++done, "", true);
    }
    bool noted_requantize = false;
    for (const QuantPoint & q : qpoints) {
        progress.update(done, "quantizing " + base_name(q.path), true);
        const std::string source         = q.source_point ? points[*q.source_point].path : o.model;
        std::string       source_imatrix = imatrix;
        if (q.source_point && !imatrix.empty()) {
            source_imatrix = default_imatrix_output(source);
            if (!fs::exists(source_imatrix)) {
                fail("%s: prune wrote no importance matrix for %s", source_imatrix.c_str(), base_name(source).c_str());
            }
        }
        quantize_point(o, q, source, source_imatrix, noted_requantize);
        stop_point(("quantizing " + base_name(q.path)).c_str());
        progress.update(++done, "", true);
    }

    // Every model of the sweep: the pruned points, then the quantized ones.
    std::vector<std::string> paths;
    for (const SweepPoint & p : points)
        paths.push_back(p.path);
    for (const QuantPoint & q : qpoints)
        paths.push_back(q.path);
    for (const std::string & p : paths)
        eval.options.pruned.push_back(p);
    // One run for all models: the base is loaded once for its logits, continuations and tasks.
    progress.update(done, "evaluating the base and " + std::to_string(paths.size()) + " models", true);
    const nlohmann::json        rows = eval_json(run_eval(eval), eval.options.convention);
    nlohmann::json              base = rows.at(0);
    std::vector<nlohmann::json> models;
    base["quant"] = "none";
    for (size_t i = 0; i < paths.size(); i++) {
        nlohmann::json entry = rows.at(i + 1);
        if (i < points.size()) {
            entry["criterion"]   = point_label(points[i]);
            entry["prune_ratio"] = points[i].prune_ratio;
            if (!points[i].merge_method.empty()) entry["merge"] = points[i].merge_method;
            entry["quant"] = "none";
        } else {
            const QuantPoint & q = qpoints[i - points.size()];
            entry["criterion"]   = q.source_point ? point_label(points[*q.source_point]) : "none";
            entry["prune_ratio"] = q.source_point ? points[*q.source_point].prune_ratio : 0.0;
            entry["quant"]       = q.type;
            entry["imatrix"]     = !imatrix.empty();
        }
        entry["keep_ratio"] = 1.0 - entry["prune_ratio"].get<double>();
        entry["path"]       = paths[i];
        models.push_back(entry);
    }
    done += paths.size() + 1;
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
    // The size/quality frontier over every point (sweep.html draws it).
    const std::vector<size_t> front = pareto_frontier(models, base);
    for (size_t i = 0; i < models.size(); i++)
        models[i]["on_frontier"] = std::find(front.begin(), front.end(), i) != front.end();
    res.chosen_is_base = !best;
    res.chosen         = best ? paths[*best] : o.model;
    res.report         = {{"identity", identity},
                          {"base", base},
                          {"models", models},
                          {"quant", quant_names(o)},
                          {"imatrix", imatrix.empty() ? nlohmann::json(nullptr) : nlohmann::json(imatrix)},
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
        // The answer stays, and a pruned answer's importance matrix with it (its quantization is
        // the user's next step); every other model and pruned importance matrix goes.
        for (size_t i = 0; i < paths.size(); i++) {
            if ((!best || *best != i) && paths[i] != res.chosen) fs::remove(paths[i], ec);
        }
        for (const SweepPoint & p : points) {
            if (p.path != res.chosen) fs::remove(default_imatrix_output(p.path), ec);
        }
    }
    return res;
}

}  // namespace reap
