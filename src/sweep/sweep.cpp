#include "sweep/sweep.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "eval/domains.h"
#include "eval/eval_output.h"
#include "eval/evaluator.h"
#include "gguf/gguf_file.h"
#include "llama/context_size.h"
#include "llama/llama_runtime.h"
#include "model/open_model.h"
#include "profile/profiler.h"
#include "stats/criteria.h"
#include "sweep/sweep_html.h"

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

void check_options(const SweepOptions & o) {
    if (o.model.empty()) fail("give the model to sweep with -m MODEL.gguf");
    if (o.calib.empty() == o.stats.empty())
        fail("give calibration data (--calib FILE) or statistics (--stats FILE), one of them");
    if (o.data.empty()) fail("give held-out text to evaluate on with --data [NAME=]FILE");
    if (o.out_dir.empty()) fail("give the output folder with -o OUTDIR");
    if (o.prune_ratios.empty()) fail("--ratios: give at least one fraction of experts to remove");
    for (double r : o.prune_ratios) {
        if (!(r > 0 && r < 1)) fail("--ratios: %g is not a fraction of experts to remove, in (0, 1)", r);
    }
    if (o.criteria.empty()) fail("--criteria: give at least one criterion");
}

// The statistics' file names: "", "code.json", or "code.json+prose.json" for several sets.
std::string stats_label(const std::vector<std::string> & stats) {
    std::string s;
    for (const std::string & f : stats)
        s += (s.empty() ? "" : "+") + base_name(f);
    return s;
}

// What identifies the sweep in OUTDIR: the model (name and size) and the statistics' source.
nlohmann::json sweep_identity(const SweepOptions & o, const ModelFiles & model) {
    nlohmann::json calib = nlohmann::json::array();
    for (const std::string & c : o.calib)
        calib.push_back(base_name(c));
    return {{"model", base_name(model.first())},
            {"model_size", model.size},
            {"calib", calib},
            {"stats", stats_label(o.stats)}};
}

// A folder holding another sweep, or this one without --resume, is refused before any work.
void check_out_dir(const SweepOptions & o, const nlohmann::json & identity) {
    const std::string record = o.out_dir + "/sweep.json";
    if (!fs::exists(record)) return;
    if (!o.resume) {
        fail("%s: holds a sweep already; continue it with --resume, or choose another -o", o.out_dir.c_str());
    }
    const nlohmann::json old = read_json_file(record, "sweep record");
    if (!old.contains("identity") || old["identity"] != identity) {
        fail("%s: holds the sweep of another model or calibration (%s); choose another -o", o.out_dir.c_str(),
             old.contains("identity") ? old["identity"].dump().c_str() : "no identity");
    }
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
    p.progress                   = false;
    const ProfileResult r        = run_profile(p);
    if (r.interrupted) fail("interrupted while profiling; continue with --resume");
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
    fs::create_directories(logits_dir);
    e.domains    = resolve_domains(o.data, {logits_dir});
    e.generation = o.generation;
    e.tasks      = o.tasks;
    e.n_ctx      = n_ctx;
    e.max_chunks = o.max_chunks;
    e.progress   = o.progress;
    return e;
}

}  // namespace

SweepResult run_sweep(const SweepOptions & o) {
    check_options(o);
    for (const std::string & c : o.criteria)
        parse_criterion(c);
    const ModelFiles     model    = model_files(o.model);
    const nlohmann::json identity = sweep_identity(o, model);
    std::error_code      ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) fail("%s: cannot create the output folder (%s)", o.out_dir.c_str(), ec.message().c_str());
    check_out_dir(o, identity);

    std::vector<SweepPoint> points;
    for (const std::string & c : o.criteria) {
        for (double r : o.prune_ratios) {
            const Criterion crit = parse_criterion(c);
            points.push_back({crit, r, o.out_dir + "/" + point_file_name(crit, r)});
        }
    }
    // One line over the whole sweep: the profile, each prune, the base's and each model's eval.
    const uint64_t steps = (o.stats.empty() ? 1 : 0) + 2 * points.size() + 1;
    Progress       progress("sweep", steps, "steps", o.progress);
    uint64_t       done = 0;
    progress.update(done, "profiling");
    const std::vector<std::string> stats = profile_once(o);
    done += o.stats.empty() ? 1 : 0;
    for (const SweepPoint & p : points) {
        progress.update(done, "pruning " + base_name(p.path));
        prune_point(o, stats, p);
        progress.update(++done, "");
    }

    const int   n_ctx = resolve_ctx_size(o.n_ctx, o.model);  // one warning when beyond the trained context
    EvalOptions e     = eval_options(o, n_ctx);
    if (!o.resume) {
        for (const auto & d : e.domains)
            fs::remove(d.base_logits, ec);  // an interrupted earlier run's, not this sweep's
    }
    for (const SweepPoint & p : points)
        e.pruned.push_back(p.path);
    // One run for all models: the base is loaded once for its logits, continuations and tasks.
    progress.update(done, "evaluating the base and " + std::to_string(points.size()) + " models", true);
    const nlohmann::json        rows = eval_json(run_eval(e), e.convention);
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
    write_file_atomic(o.out_dir + "/sweep.json", res.report.dump(1) + "\n");
    write_file_atomic(o.out_dir + "/sweep.html", sweep_html(res.report));
    if (!o.keep_all) {
        for (size_t i = 0; i < points.size(); i++) {
            if (!best || *best != i) fs::remove(points[i].path, ec);
        }
    }
    return res;
}

}  // namespace reap
