#include "hf/hf_prune_request.h"

#include "core/error.h"
#include "core/log.h"
#include "hf/hf_layout.h"
#include "hf/hf_pruner.h"

namespace reap {

PruneOutcome run_hf_prune(const PruneRequest & r) {
    if (r.output.empty() && !r.dry_run) fail_usage("give -o/--output (or --dry-run)");
    if (r.split_max_bytes != 0) {
        fail_usage("--split-max-size: a Hugging Face output is sharded like its input; the option is for GGUF");
    }
    const HfCheckpoint c      = HfCheckpoint::open(r.model);
    const HfLayout     layout = analyze_hf(c);
    PruneOutcome       out;
    out.original_size             = c.weights_size();
    const std::vector<Plan> plans = plans_for_request(r, layout.shape);
    for (const auto & p : plans) {
        PlannedOutput o;
        o.job         = {p, r.output.empty() ? "" : ratio_output_name(r.output, p.keep_ratio, plans.size() > 1), 0};
        o.output_size = hf_pruned_size(c, layout, p);
        if (!r.output.empty()) o.files = {o.job.output};
        out.outputs.push_back(std::move(o));
    }
    std::vector<std::string> inputs = {c.dir, c.config_path};  // any file inside the folder, and
    for (const auto & sh : c.shards)                           // the shards where links lead
        inputs.push_back(sh.path());
    refuse_prune_outputs_over_inputs(r, out, inputs);
    finish_plan_report(r, out);
    if (r.dry_run) return out;
    if (!c.weights_outside_index.empty()) {
        std::string list;
        for (const auto & f : c.weights_outside_index)
            list += (list.empty() ? "" : ", ") + f;
        log_warn(
            "%s: %zu weight file(s) besides the checkpoint's own are left out of the output (unpruned copies "
            "of the model): %s",
            r.model.c_str(), c.weights_outside_index.size(), list.c_str());
    }
    prune_hf(c, layout, planned_jobs(out), r.show_progress);
    out.wrote_models = true;
    return out;
}

}  // namespace reap
