#include "sweep/sweep_points.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_pruning_record.h"
#include "gguf/imatrix_file.h"
#include "llama/quantize.h"
#include "model/open_model.h"
#include "prune/prune_request.h"

#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace reap {

namespace {

// The GGUF general.file_type of `f` (-1 when absent).
int64_t file_type_of(const GgufFile & f) {
    const int64_t k = gguf_find_key(f.meta(), "general.file_type");
    return k < 0 ? -1 : int64_t(gguf_get_val_u32(f.meta(), k));
}

}  // namespace

std::string point_label(const SweepPoint & p) {
    return p.merge_method.empty() ? criterion_name(p.criterion) : p.merge_method;
}

void prune_point(const SweepOptions & o, const std::vector<std::string> & stats, const SweepPoint & p,
                 const std::string & imatrix) {
    PruneRequest r;
    r.model         = o.model;
    r.stats         = stats;
    r.stats_weights = o.stats_weights;
    r.stats_combine = o.stats_combine;
    r.keep_ratios   = {1.0 - p.prune_ratio};
    r.criterion     = p.criterion;
    r.merge_method  = p.merge_method;
    r.output        = p.path;
    r.show_progress = false;
    if (!imatrix.empty()) {
        r.imatrix     = imatrix;
        r.imatrix_out = default_imatrix_output(p.path);
    }
    if (fs::exists(p.path)) {
        if (!o.resume) fail("%s: exists; continue the sweep with --resume, or choose another -o", p.path.c_str());
        PruneRequest dry           = r;
        dry.dry_run                = true;
        dry.output                 = "";
        const PruneOutcome planned = run_prune(dry);
        const Plan &       plan    = planned.outputs.at(0).job.plan;
        // The file's whole expert map (every slot's sources and weights), not only its kept ids:
        // a merged point with other weights is another model.
        const auto record = read_pruning_record(p.path);
        const bool same   = record && same_map(*record, plan);
        if (!same) {
            fail(
                "%s: is not the %s plan of %s at this ratio (another model or other statistics); remove it or choose "
                "another -o",
                p.path.c_str(), point_label(p).c_str(), base_name(o.model).c_str());
        }
        // The model is this plan's; its importance matrix went with the non-answers: prune again.
        if (imatrix.empty() || fs::exists(r.imatrix_out)) return;
    }
    run_prune(r);
}

void quantize_point(const SweepOptions & o, const QuantPoint & q, const std::string & source,
                    const std::string & imatrix_path, bool & noted_requantize) {
    const QuantType & type = parse_quant_type(q.type);
    if (fs::exists(q.path)) {
        if (!o.resume) fail("%s: exists; continue the sweep with --resume, or choose another -o", q.path.c_str());
        const GgufFile f = GgufFile::open(q.path);
        // Quantizing keeps every key, so the copy of a pruned model carries its record unchanged
        // (and the base's copy none).
        const bool same_source  = read_pruning_record(f) == read_pruning_record(source);
        const bool same_imatrix = (gguf_find_key(f.meta(), "quantize.imatrix.file") >= 0) == !imatrix_path.empty();
        if (!same_source || file_type_of(f) != type.ftype || !same_imatrix) {
            fail("%s: is not %s quantized to %s %s; remove it or choose another -o", q.path.c_str(),
                 base_name(source).c_str(), type.name,
                 imatrix_path.empty() ? "without an importance matrix" : "with its importance matrix");
        }
        return;
    }
    QuantizeRequest r;
    r.input     = source;
    r.output    = q.path;
    r.type      = q.type;
    r.n_threads = o.n_threads;
    Imatrix m;
    if (!imatrix_path.empty()) {
        m              = read_imatrix(imatrix_path);
        r.imatrix      = &m;
        r.imatrix_name = base_name(imatrix_path);
    }
    r.note_requantize  = !noted_requantize;
    const auto outcome = quantize_model(r);
    noted_requantize   = noted_requantize || outcome.requantized;
    if (!outcome.fallback.empty()) {
        log_info("%s: %s (rows narrower than the type's blocks: llama.cpp's fallback types)", base_name(q.path).c_str(),
                 outcome.fallback.c_str());
    }
}

}  // namespace reap
