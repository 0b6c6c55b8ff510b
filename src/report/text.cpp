#include "report/text.h"

#include "core/error.h"

#include <sstream>

namespace reap::report {

std::string text_summary(const std::vector<FileView> & files, const std::vector<PairAgreement> & pairs,
                         const ReportOptions & o) {
    std::ostringstream t;
    const char *       crit = criterion_name(o.criterion);
    for (const auto & v : files) {
        // One header line: the provenance that tells runs apart (tool and calibration files are in the page).
        std::string head;
        for (const auto & [label, value] : provenance(v)) {
            if (label == "tool" || label == "calibration") continue;
            head += (head.empty() ? " " : ", ") + label + " " + value;
        }
        t << v.file->path << ":" << head << "\n";
        t << strfmt("  criterion %s; keep-ratio %g keeps %zu of %zu experts per layer\n    %s: %s\n", crit,
                    o.keep_ratio, v.kept, v.n_expert, crit, criterion_meaning(o.criterion));
        if (!v.groups_known) t << "  note: " << k_groups_unknown << "\n";
        t << "  " << (v.convergence.moving ? "WARNING: " : "") << v.convergence.summary() << "\n";
        if (v.supers.measured) {
            t << strfmt("  super experts: %zu (%s; reap prune protects them)\n", v.supers.experts.size(),
                        v.supers.rule_text().c_str());
        } else {
            t << "  super experts: n/a (no max_activation in this stats file: made by an older reap)\n";
        }
        for (const auto & l : v.layers) {
            t << strfmt("  layer %3d: never activated %zu", l.il, l.never.size());
            if (!l.never.empty()) t << " [" << id_list(l.never) << "]";
            t << strfmt("; skew %s (gini %.3f); top expert %u (%s), bottom %u (%s)", num(l.skew).c_str(), l.gini_counts,
                        l.top, num(l.score[l.top]).c_str(), l.bottom, num(l.score[l.bottom]).c_str());
            if (!l.super.empty()) t << "; super experts [" << id_list(l.super) << "]";
            t << "\n";
        }
    }
    if (!pairs.empty()) {
        t << strfmt("agreement (criterion %s, keep-ratio %g):\n", crit, o.keep_ratio);
        for (const auto & p : pairs) {
            t << "  " << files[p.a].file->path << " vs " << files[p.b].file->path << ": Spearman mean "
              << num(p.mean_rho);
            if (p.min_rho_layer >= 0) t << strfmt(" (lowest %s in layer %d)", num(p.min_rho).c_str(), p.min_rho_layer);
            t << strfmt(", pruned-set overlap mean %.3f, Jaccard mean %.3f\n", p.mean_overlap, p.mean_jaccard);
            for (const auto & g : p.layers) {
                t << strfmt("    layer %3d: Spearman %s, overlap %zu/%zu = %.3f, Jaccard %.3f\n", g.il,
                            num(g.rho).c_str(), g.common, g.dropped, g.overlap(), g.jaccard());
            }
        }
    }
    return t.str();
}

}  // namespace reap::report
