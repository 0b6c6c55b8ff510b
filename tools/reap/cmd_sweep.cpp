#include "commands.h"
#include "core/error.h"
#include "core/text.h"
#include "llama/context_size.h"
#include "llama/quantize.h"
#include "prune/prune_request.h"
#include "stats/criteria.h"
#include "sweep/sweep.h"
#include "sweep/sweep_choice.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace reap::cli {

namespace {

std::string join(const std::vector<std::string> & v, const char * sep) {
    std::string s;
    for (const std::string & x : v)
        s += (s.empty() ? "" : sep) + x;
    return s;
}

// One line per model: size, worst-domain KL, the first domain's PPL, top-1, and where asked for
// the degeneration rate and each task's accuracy; why a model is outside the tolerance.
void print_summary(const SweepResult & r) {
    const nlohmann::json &   base = r.report["base"];
    const bool               gen  = base.contains("generation");
    std::vector<std::string> tasks;
    if (base.contains("tasks")) {
        for (const auto & [t, v] : base["tasks"].items())
            tasks.push_back(t);
    }
    const bool  quant = !r.report.value("quant", nlohmann::json::array()).empty();
    std::string head  = strfmt("%-24s %10s %9s %9s %7s", "model", "size", "worst KL", "PPL", "top-1");
    if (quant) head = strfmt("%-28s %-8s %10s %9s %9s %7s", "model", "quant", "size", "worst KL", "PPL", "top-1");
    if (gen) head += strfmt(" %7s", "degen");
    for (const auto & t : tasks)
        head += strfmt(" %15s", t.c_str());
    std::printf("%s  within tolerance\n", head.c_str());
    auto line = [&](const nlohmann::json & e, const std::string & name, const std::string & verdict) {
        const std::string size = human_bytes(e.value("file_size", uint64_t(0)));
        std::string       l    = strfmt("%-24s %10s %9.4f %9.3f %7.4f", name.c_str(), size.c_str(), worst_kl_of(e),
                                        e.value("ppl", 0.0), e.value("top1_agreement", 0.0));
        if (quant) {
            const std::string q =
                e.contains("quant") && e["quant"].is_string() ? e["quant"].get<std::string>() : "none";
            l = strfmt("%-28s %-8s %10s %9.4f %9.3f %7.4f", name.c_str(), q.c_str(), size.c_str(), worst_kl_of(e),
                       e.value("ppl", 0.0), e.value("top1_agreement", 0.0));
        }
        if (gen) l += strfmt(" %7.3f", e["generation"].value("degeneration", 0.0));
        for (const auto & t : tasks)
            l += strfmt(" %15.3f", e["tasks"][t].value("accuracy", 0.0));
        std::printf("%s  %s\n", l.c_str(), verdict.c_str());
    };
    line(base, "base " + base.value("model", std::string()), "");
    for (const auto & m : r.report["models"]) {
        line(m, m.value("model", std::string()),
             (m.value("within_tolerance", false) ? std::string("yes") : m.value("outside_tolerance", std::string())) +
                 (m.value("chosen", false) ? "  <- the answer" : ""));
    }
    if (r.chosen_is_base) std::printf("no pruned model is within the tolerance; the base model:\n");
    std::printf("%s\n", r.chosen.c_str());
}

}  // namespace

void add_sweep(CLI::App & app, CommandRun & run) {
    auto   o      = std::make_shared<SweepOptions>();
    auto   ratios = std::make_shared<std::string>("0.25,0.5,0.625,0.75");
    auto   crits  = std::make_shared<std::string>("reap,frequency");
    auto * cmd    = app.add_subcommand(
           "sweep",
           "profile once, prune at several ratios x criteria (and quantize with --quant), evaluate each, and name "
              "the smallest model within tolerance (last line of the output)");
    cmd->add_option("-m,--model", o->model, "base GGUF model")->required();
    cmd->add_option("--calib", o->calib, "calibration file(s) for the profile (as profile --data)");
    auto weights = std::make_shared<std::string>();
    auto combine = std::make_shared<std::string>(stats_combine_info(k_default_stats_combine).name);
    cmd->add_option("--stats", o->stats,
                    "statistics of an earlier profile of this model, instead of --calib; several: combined as prune "
                    "combines them");
    cmd->add_option("--stats-weights", *weights, "as prune --stats-weights (one per --stats file; default: equal)");
    cmd->add_option("--stats-combine", *combine, "as prune --stats-combine: " + join(stats_combine_names(), ", "))
        ->capture_default_str()
        ->check(CLI::IsMember(stats_combine_names()));
    cmd->add_option("--data", o->data, "held-out text: [NAME=]FILE, one per domain")->required();
    cmd->add_option("-o,--output", o->out_dir, "output folder (stats, pruned models, base logits, sweep.json/html)")
        ->required();
    auto * prompts = cmd->add_option("--prompts", o->generation.prompts,
                                     "prompts every model continues greedily (as eval --prompts): agreement with the "
                                     "base, degeneration rate");
    cmd->add_option("--gen-tokens", o->generation.n_tokens, "tokens generated per prompt")
        ->needs(prompts)
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--chat-template", o->generation.chat_template, "as eval --chat-template, for 'messages' prompts")
        ->needs(prompts);
    cmd->add_option("--hellaswag", o->tasks.hellaswag, "task file in llama-perplexity's HellaSwag format");
    cmd->add_option("--winogrande", o->tasks.winogrande, "task file in llama-perplexity's Winogrande CSV");
    cmd->add_option("--multiple-choice", o->tasks.multiple_choice,
                    "task file in llama-perplexity's binary multiple-choice format");
    cmd->add_option("--tasks", o->tasks.limit, "tasks scored per file, picked as llama-perplexity picks them (0: all)")
        ->check(CLI::Range(0, 1 << 30));
    cmd->add_option("--ratios", *ratios, "fractions of the experts to remove, comma-separated");
    cmd->add_option("--criteria", *crits,
                    "criteria, comma-separated (" + join(criterion_names(false, true), ", ") + ")");
    auto merge = std::make_shared<std::string>();
    cmd->add_option("--merge", *merge,
                    "also merge experts at every ratio by these methods, comma-separated (ream, msmoe), beside the "
                    "pruned points at the same sizes; the profile then collects --merge-stats (default: none)");
    auto quant = std::make_shared<std::string>();
    cmd->add_option("--quant", *quant,
                    "also quantize the base and every pruned model to these llama-quantize types, comma-separated "
                    "(e.g. Q8_0,Q4_K_M,IQ4_XS), each with its importance matrix, and evaluate every point (default: "
                    "none)");
    cmd->add_option("--imatrix", o->imatrix,
                    "with --stats and --quant: the base's importance matrix (llama-imatrix's GGUF, or profile "
                    "--imatrix); with --calib the sweep's profile collects it (default: none with --stats)");
    cmd->add_option("--max-kl", o->tolerance.max_kl, "tolerance: worst-domain mean KL divergence base -> model");
    cmd->add_option("--max-degeneration", o->tolerance.max_degeneration,
                    "tolerance: share of degenerate continuations (with --prompts)");
    cmd->add_option("--min-task-ratio", o->tolerance.min_task_ratio,
                    "tolerance: task accuracy as a fraction of the base's (with tasks)");
    cmd->add_option("-c,--ctx-size", o->n_ctx, "eval window in tokens (0: the model's trained context)")
        ->default_str(k_ctx_size_default_text)
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--chunks", o->max_chunks, "eval windows per domain (-1: all)");
    cmd->add_option("--max-samples", o->max_samples, "calibration samples to profile (-1: all)");
    add_llama_flags(*cmd, *o);
    cmd->add_flag(
        "--resume", o->resume,
        "reuse the stats, importance matrix, pruned and quantized models and base logits already in the output folder");
    cmd->add_flag("--keep-all", o->keep_all,
                  "keep every pruned and quantized model and pruned importance matrix (default: only the answer)");
    cmd->add_flag("!--no-progress", o->progress, "no progress line on stderr");
    cmd->callback([o, ratios, crits, weights, combine, quant, merge, &run]() {
        o->merge = merge->empty() ? std::vector<std::string>{} : split_list(*merge);
        o->quant.clear();
        if (!quant->empty()) {
            for (const std::string & t : split_list(*quant))
                o->quant.push_back(parse_quant_type(t).name);
        }
        o->stats_combine = parse_stats_combine(*combine);
        if (!weights->empty()) o->stats_weights = parse_stats_weights(*weights, o->stats.size());
        o->prune_ratios.clear();
        for (const std::string & r : split_list(*ratios)) {
            double v = 0;
            if (!parse_number(r, v)) throw CLI::ValidationError("--ratios", "'" + r + "' is not a number");
            if (!(v > 0 && v < 1)) throw CLI::ValidationError("--ratios", r + " is not a fraction in (0, 1)");
            o->prune_ratios.push_back(v);
        }
        o->criteria = split_list(*crits);
        for (const std::string & c : o->criteria) {
            const auto names = criterion_names(false, true);
            if (std::find(names.begin(), names.end(), c) == names.end()) {
                throw CLI::ValidationError("--criteria", "'" + c + "' is not one of " + join(names, ", "));
            }
        }
        check_sweep_options(*o);
        run = [o]() { print_summary(run_sweep(*o)); };
    });
}

}  // namespace reap::cli
