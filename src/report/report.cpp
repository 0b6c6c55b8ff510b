#include "report/report.h"

#include "core/error.h"
#include "core/text.h"
#include "core/fs_util.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

namespace reap {

using nlohmann::json;

// ---- statistics helpers ------------------------------------------------------------------------

std::vector<double> average_ranks(const std::vector<double> & v) {
    std::vector<size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < idx.size();) {
        size_t j = i;
        while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) {
            j++;
        }
        const double avg = double(i + j) / 2.0 + 1.0;  // positions i..j hold ranks i+1..j+1
        for (size_t k = i; k <= j; k++) {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    return r;
}

double spearman(const std::vector<double> & a, const std::vector<double> & b) {
    if (a.size() != b.size()) {
        fail("spearman: samples of different lengths (%zu and %zu)", a.size(), b.size());
    }
    const size_t n = a.size();
    if (n < 2) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    const auto   ra = average_ranks(a), rb = average_ranks(b);
    const double mean = double(n + 1) / 2.0;  // the mean rank, with or without ties
    double       sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = ra[i] - mean, y = rb[i] - mean;
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if (saa == 0 || sbb == 0) {
        return std::numeric_limits<double>::quiet_NaN();  // one side is all ties: no order to compare
    }
    return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

double gini(const std::vector<double> & v) {
    for (double x : v) {
        if (!(x >= 0)) fail("gini: values must be non-negative (got %g)", x);
    }
    std::vector<double> s(v);
    std::sort(s.begin(), s.end());
    const double n     = double(s.size());
    const double total = std::accumulate(s.begin(), s.end(), 0.0);
    if (s.empty() || total == 0) {
        return 0.0;
    }
    // G = sum_i (2i - n - 1) x_(i) / (n * sum x), i = 1..n over the sorted values. The weights
    // sum to zero, so equal values give exactly 0 up to rounding.
    double acc = 0;
    for (size_t i = 0; i < s.size(); i++) {
        acc += (2.0 * double(i + 1) - n - 1.0) * s[i];
    }
    return std::max(0.0, acc / (n * total));
}

// Every expert id of a layer, in the order the planner prunes them.
static std::vector<uint32_t> pruning_order(const std::vector<double> & score, const std::vector<uint64_t> & count) {
    std::vector<uint32_t> ids(score.size());
    std::iota(ids.begin(), ids.end(), 0u);
    return reap::pruning_order(std::move(ids), score, count);
}

std::string html_escape(const std::string & s) {
    std::string o;
    o.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&':  o += "&amp;"; break;
            case '<':  o += "&lt;"; break;
            case '>':  o += "&gt;"; break;
            case '"':  o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default:   o += c;
        }
    }
    return o;
}

// ---- per-file analysis -------------------------------------------------------------------------

namespace {

// What the report says about one layer of one stats file.
struct LayerView {
    int                   il = 0;
    const LayerStats *    L  = nullptr;
    std::vector<double>   score, freq;
    std::vector<uint32_t> dropped, never;
    double                skew = 0, gini_counts = 0;  // skew: max / mean activation frequency
    uint32_t              top = 0, bottom = 0;
};

struct FileView {
    const ReportFile *     file = nullptr;
    std::string            name;  // base name
    size_t                 n_expert = 0;
    MoeShape               shape;                 // as the stats file records it
    bool                   groups_known = false;  // older stats files do not record expert groups
    size_t                 kept = 0;              // what reap prune keeps at the report's ratio
    std::vector<LayerView> layers;
};

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

constexpr const char * k_groups_unknown =
    "this stats file does not record the model's expert groups (made by an older reap): the dropped experts assume "
    "ungrouped routing; on a grouped model (deepseek2-style) reap prune may drop others";

std::string num(double v) { return std::isfinite(v) ? strfmt("%.4g", v) : "n/a"; }

std::string id_list(const std::vector<uint32_t> & v) { return id_ranges(v, ", "); }

// A table cell's worth of expert ids; long lists fold away (<details> needs no script) so that
// a 256-expert model still gives a table one can scan.
std::string ids_html(const std::vector<uint32_t> & v) {
    if (v.size() <= 16) return id_list(v);
    return strfmt("<details><summary>%zu experts</summary>", v.size()) + id_list(v) + "</details>";
}

FileView analyze(const ReportFile & f, const ReportOptions & o) {
    FileView v;
    v.file = &f;
    v.name  = base_name(f.path);
    v.shape = f.stats.shape(&v.groups_known);
    v.kept  = round_kept_count(v.shape, o.keep_ratio);
    for (const auto & [il, L] : f.stats.layers) {
        LayerView lv;
        lv.il      = il;
        lv.L       = &L;
        lv.score   = expert_scores(L, o.criterion, 0, il);
        lv.freq    = L.activation_frequency();
        lv.dropped = dropped_experts(lv.score, L.count, v.shape, uint32_t(v.kept));
        for (uint32_t e = 0; e < L.n_expert(); e++) {
            if (L.count[e] == 0) lv.never.push_back(e);
        }
        const double mean = std::accumulate(lv.freq.begin(), lv.freq.end(), 0.0) / double(lv.freq.size());
        lv.skew           = mean > 0 ? *std::max_element(lv.freq.begin(), lv.freq.end()) / mean : k_nan;
        lv.gini_counts    = gini(std::vector<double>(L.count.begin(), L.count.end()));
        const auto order  = pruning_order(lv.score, L.count);
        lv.bottom         = order.front();
        lv.top            = order.back();
        v.n_expert        = std::max(v.n_expert, L.n_expert());
        v.layers.push_back(std::move(lv));
    }
    return v;
}

// Comparison needs a model of the same shape: what "_meta" records, then the statistics'
// layers and expert counts (prototype files record nothing). Runs on two quantizations of one
// model compare; runs on models of another architecture or shape do not.
void check_same_model(const ReportFile & first, const ReportFile & f) {
    reap::check_same_model(first.stats.meta, f.stats.meta, f.path, SameModel::shape);
    MoeShape shape = first.stats.shape();
    if (!first.stats.meta.n_expert_groups) shape.n_expert_groups = f.stats.meta.n_expert_groups.value_or(0);
    check_stats_match(f.stats, shape, f.path);
}

// Agreement of two runs on one layer.
struct LayerAgreement {
    int                   il = 0;
    double                rho = k_nan;
    size_t                common = 0, dropped = 0, in_union = 0;
    std::vector<uint32_t> only_a, only_b;
    // |A∩B| / |A| (A and B have the same size); both empty (keep ratio 1) counts as full agreement.
    double overlap() const { return dropped ? double(common) / double(dropped) : 1.0; }
    double jaccard() const { return in_union ? double(common) / double(in_union) : 1.0; }
};

struct PairAgreement {
    size_t                      a = 0, b = 0;  // file indices
    std::vector<LayerAgreement> layers;
    double mean_rho = k_nan, min_rho = k_nan, mean_overlap = 0, mean_jaccard = 0;
    int    min_rho_layer = -1;
    size_t rho_layers    = 0;  // layers with a defined correlation
};

PairAgreement compare(const FileView & A, const FileView & B, size_t ia, size_t ib) {
    PairAgreement p;
    p.a = ia;
    p.b = ib;
    double rho_sum = 0;
    for (size_t i = 0; i < A.layers.size(); i++) {
        const LayerView & la = A.layers[i];
        const LayerView & lb = B.layers[i];  // same layer: check_same_model() made the sets equal
        LayerAgreement    g;
        g.il  = la.il;
        g.rho = spearman(la.score, lb.score);
        std::vector<uint32_t> both, any;
        std::set_intersection(la.dropped.begin(), la.dropped.end(), lb.dropped.begin(), lb.dropped.end(),
                              std::back_inserter(both));
        std::set_union(la.dropped.begin(), la.dropped.end(), lb.dropped.begin(), lb.dropped.end(),
                       std::back_inserter(any));
        std::set_difference(la.dropped.begin(), la.dropped.end(), lb.dropped.begin(), lb.dropped.end(),
                            std::back_inserter(g.only_a));
        std::set_difference(lb.dropped.begin(), lb.dropped.end(), la.dropped.begin(), la.dropped.end(),
                            std::back_inserter(g.only_b));
        g.common   = both.size();
        g.dropped  = la.dropped.size();
        g.in_union = any.size();
        if (std::isfinite(g.rho)) {
            rho_sum += g.rho;
            p.rho_layers++;
            if (!std::isfinite(p.min_rho) || g.rho < p.min_rho) {
                p.min_rho       = g.rho;
                p.min_rho_layer = g.il;
            }
        }
        p.mean_overlap += g.overlap();
        p.mean_jaccard += g.jaccard();
        p.layers.push_back(std::move(g));
    }
    if (p.rho_layers) p.mean_rho = rho_sum / double(p.rho_layers);
    if (!p.layers.empty()) {
        p.mean_overlap /= double(p.layers.size());
        p.mean_jaccard /= double(p.layers.size());
    }
    return p;
}

// A meta value as display text ("" when absent).
std::string meta_text(const json & meta, const char * key) {
    if (!meta.is_object() || !meta.contains(key) || meta[key].is_null()) return "";
    const json & v = meta[key];
    return v.is_string() ? v.get<std::string>() : v.dump();
}

// Provenance from "_meta" as (label, value) pairs, in reading order; only what is present.
std::vector<std::pair<std::string, std::string>> provenance(const FileView & v) {
    const json                                       m = v.file->stats.meta.to_json();
    std::vector<std::pair<std::string, std::string>> out;
    auto add = [&](const char * label, const std::string & value) {
        if (!value.empty()) out.emplace_back(label, value);
    };
    add("model", meta_text(m, "model"));
    add("architecture", meta_text(m, "architecture"));
    add("experts", std::to_string(v.n_expert));
    add("per token", meta_text(m, "n_expert_used"));
    add("MoE layers", std::to_string(v.layers.size()));
    add("tokens", meta_text(m, "tokens").empty() && !v.layers.empty() ? std::to_string(v.layers[0].L->total_tokens)
                                                                        : meta_text(m, "tokens"));
    add("samples", meta_text(m, "samples"));
    if (m.is_object() && m.contains("calibration") && m["calibration"].is_array()) {
        std::string cal;
        for (const auto & c : m["calibration"]) {
            if (!c.is_object()) continue;
            cal += (cal.empty() ? "" : ", ") + base_name(meta_text(c, "file"));
            if (c.contains("tokens")) cal += " (" + meta_text(c, "tokens") + " tokens)";
        }
        add("calibration", cal);
    }
    add("date", meta_text(m, "date"));
    add("tool", meta_text(m, "tool"));
    if (m.is_object() && m.contains("progress") && m["progress"].is_object() &&
        m["progress"].value("complete", true) == false) {
        add("status", "incomplete (a checkpoint of an unfinished run)");
    }
    return out;
}

// ---- text summary ------------------------------------------------------------------------------

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
        t << strfmt("  criterion %s; keep-ratio %g keeps %zu of %zu experts per layer\n", crit, o.keep_ratio, v.kept,
                    v.n_expert);
        if (!v.groups_known) t << "  note: " << k_groups_unknown << "\n";
        for (const auto & l : v.layers) {
            t << strfmt("  layer %3d: never activated %zu", l.il, l.never.size());
            if (!l.never.empty()) t << " [" << id_list(l.never) << "]";
            t << strfmt("; skew %s (gini %.3f); top expert %u (%s), bottom %u (%s)\n", num(l.skew).c_str(),
                        l.gini_counts, l.top, num(l.score[l.top]).c_str(), l.bottom, num(l.score[l.bottom]).c_str());
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
                t << strfmt("    layer %3d: Spearman %s, overlap %zu/%zu = %.3f, Jaccard %.3f\n", g.il, num(g.rho).c_str(),
                            g.common, g.dropped, g.overlap(), g.jaccard());
            }
        }
    }
    return t.str();
}

// ---- HTML --------------------------------------------------------------------------------------

// Viridis at 9 evenly spaced points: perceptually uniform and readable in grey and by most
// colour-blind readers.
constexpr unsigned char k_viridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 82, 139},  {44, 114, 142}, {33, 145, 140},
                                           {40, 174, 128}, {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};

std::string colour(double t) {
    t              = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
    const double x = t * 8.0;
    const int    i = std::min(7, int(x));
    const double f = x - double(i);
    int          c[3];
    for (int k = 0; k < 3; k++) {
        c[k] = int(std::lround(k_viridis[i][k] + f * (k_viridis[i + 1][k] - k_viridis[i][k])));
    }
    return strfmt("#%02x%02x%02x", c[0], c[1], c[2]);
}

constexpr const char * k_never_colour = "#c4c4c4";

const char * k_css = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:24px auto;padding:0 24px;max-width:1360px;color:#1d1d1f;background:#fff;line-height:1.4}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:36px 0 6px;padding-bottom:4px;border-bottom:2px solid #e3e3e3}
h3{font-size:15px;margin:22px 0 4px}
p.note{color:#555;font-size:13px;margin:4px 0 10px}
dl.prov{display:flex;flex-wrap:wrap;gap:2px 18px;font-size:13px;margin:6px 0 12px}
dl.prov div{display:flex;gap:5px}
dl.prov dt{color:#666}
dl.prov dd{margin:0;font-weight:600}
.warn{color:#b00020}
.heatmap{overflow-x:auto;margin:6px 0}
.heatmap svg{display:block}
svg text{font-size:11px;fill:#333}
svg text.axis{font-size:12px;fill:#555}
svg .drop{stroke:#ff2d55;stroke-width:2;stroke-linecap:round;fill:none;pointer-events:none}
svg rect.cell:hover{stroke:#000;stroke-width:1.5}
table{border-collapse:collapse;font-size:13px;margin:8px 0 18px}
th,td{border:1px solid #ddd;padding:3px 9px;text-align:right;vertical-align:top}
th{background:#f4f4f6;font-weight:600}
td.ids{text-align:left;max-width:460px}
tr:nth-child(even) td{background:#fafafa}
nav a{margin-right:14px}
summary{cursor:pointer;color:#333}
)";

// One file's heatmap: a row per layer, a column per expert, colour = score / the layer's
// highest score. Pruning ranks experts within a layer, so a per-layer scale shows what decides
// it; a global scale would let one high-norm layer wash out the others. The layer's highest
// score is printed at the right of each row, the exact values are in the tooltips.
std::string heatmap_svg(const FileView & v, size_t file_index, const ReportOptions & o) {
    const size_t n  = v.n_expert;
    const size_t R  = v.layers.size();
    const int    cw = std::clamp(int(1000 / std::max<size_t>(n, 1)), 4, 26);  // cell width
    const int    rh = std::clamp(cw, 9, 26);                                 // row height
    const int    gap    = cw >= 8 ? 1 : 0;
    const int    left   = 70, top = 40, right = 110;
    const int    grid_w = int(n) * cw, grid_h = int(R) * rh;
    const int    width  = std::max(left + grid_w + right, 720);
    const int    height = top + grid_h + 64;
    const int    label_every_col = std::max(1, int(std::ceil(22.0 / cw)));
    const int    label_every_row = std::max(1, int(std::ceil(12.0 / rh)));

    std::ostringstream s;
    s << strfmt("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "role=\"img\" aria-label=\"heatmap of the %s score per layer and expert\">\n",
                width, height, width, height, criterion_name(o.criterion));
    s << strfmt("<text class=\"axis\" x=\"%d\" y=\"12\">expert \u2192</text>\n", left);
    s << strfmt("<text class=\"axis\" x=\"4\" y=\"%d\">layer \u2193</text>\n", top - 8);
    s << strfmt("<text class=\"axis\" x=\"%d\" y=\"%d\">layer max</text>\n", left + grid_w + 8, top - 8);
    for (size_t e = 0; e < n; e += size_t(label_every_col)) {
        s << strfmt("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%zu</text>\n", left + (double(e) + 0.5) * cw,
                    top - 8, e);
    }
    for (size_t r = 0; r < R; r++) {
        const LayerView & l    = v.layers[r];
        const double      maxs = l.score[l.top];
        const int         y    = top + int(r) * rh;
        if (r % size_t(label_every_row) == 0) {
            s << strfmt("<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"central\">%d</text>\n",
                        left - 6, y + rh / 2.0, l.il);
            s << strfmt("<text x=\"%d\" y=\"%.1f\" dominant-baseline=\"central\">%s</text>\n", left + grid_w + 8,
                        y + rh / 2.0, num(maxs).c_str());
        }
        for (uint32_t e = 0; e < l.score.size(); e++) {
            const bool   never   = l.L->count[e] == 0;
            const bool   dropped = std::binary_search(l.dropped.begin(), l.dropped.end(), e);
            const double rel     = maxs > 0 ? l.score[e] / maxs : 0.0;
            const int    x       = left + int(e) * cw;
            std::string  tip     = strfmt("layer %d, expert %u\n%s %s (%.0f%% of the layer max)\ncount %llu, frequency %s",
                                          l.il, e, criterion_name(o.criterion), num(l.score[e]).c_str(), 100.0 * rel,
                                          (unsigned long long) l.L->count[e], num(l.freq[e]).c_str());
            if (never) tip += "\nnever activated";
            if (dropped) tip += strfmt("\ndropped at keep-ratio %g", o.keep_ratio);
            s << strfmt("<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>\n",
                        x, y, cw - gap, rh - gap, never ? k_never_colour : colour(rel).c_str(), html_escape(tip).c_str());
        }
        for (uint32_t e : l.dropped) {
            // A cross inside the cell, inset so that neighbouring crosses stay apart.
            const double x0 = left + double(e) * cw, y0 = y;
            const double ix = std::max(1.0, (cw - gap) * 0.22), iy = std::max(1.0, (rh - gap) * 0.22);
            const double x1 = x0 + ix, x2 = x0 + cw - gap - ix, y1 = y0 + iy, y2 = y0 + rh - gap - iy;
            s << strfmt("<path class=\"drop\" d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\"/>\n", x1, y1, x2, y2, x1, y2,
                        x2, y1);
        }
    }

    // Legend: the colour scale, the never-activated colour and the drop mark.
    const int ly = top + grid_h + 22;
    s << strfmt("<defs><linearGradient id=\"reap-scale-%zu\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">", file_index);
    for (int i = 0; i < 9; i++) {
        s << strfmt("<stop offset=\"%.3f\" stop-color=\"%s\"/>", i / 8.0, colour(i / 8.0).c_str());
    }
    s << "</linearGradient></defs>\n";
    s << strfmt("<text x=\"%d\" y=\"%d\" text-anchor=\"end\" dominant-baseline=\"central\">0</text>\n", left - 6, ly + 7);
    s << strfmt("<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"220\" height=\"14\" fill=\"url(#reap-scale-%zu)\"/>\n",
                left, ly, file_index);
    s << strfmt("<text x=\"%d\" y=\"%d\" dominant-baseline=\"central\">layer max</text>\n", left + 226, ly + 7);
    s << strfmt("<text class=\"axis\" x=\"%d\" y=\"%d\">%s / highest %s in the layer</text>\n", left, ly + 30,
                criterion_name(o.criterion), criterion_name(o.criterion));
    const int gx = left + 300;
    s << strfmt("<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", gx, ly, k_never_colour);
    s << strfmt("<text x=\"%d\" y=\"%d\" dominant-baseline=\"central\">never activated</text>\n", gx + 20, ly + 7);
    const int dx = gx + 130;
    s << strfmt("<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", dx, ly, colour(0.1).c_str());
    s << strfmt("<path class=\"legend-drop\" d=\"M%d %dL%d %dM%d %dL%d %d\" stroke=\"#ff2d55\" stroke-width=\"2\" "
                "stroke-linecap=\"round\"/>\n",
                dx + 3, ly + 3, dx + 11, ly + 11, dx + 3, ly + 11, dx + 11, ly + 3);
    s << strfmt("<text x=\"%d\" y=\"%d\" dominant-baseline=\"central\">dropped at keep-ratio %g</text>\n", dx + 20, ly + 7,
                o.keep_ratio);
    s << "</svg>\n";
    return s.str();
}

std::string file_section(const FileView & v, size_t index, const ReportOptions & o) {
    std::ostringstream h;
    const size_t       kept = v.kept;
    h << "<section id=\"file-" << index << "\">\n<h2>" << html_escape(v.name) << "</h2>\n";
    h << "<dl class=\"prov\"><div><dt>file</dt><dd>" << html_escape(v.file->path) << "</dd></div>";
    for (const auto & [label, value] : provenance(v)) {
        h << "<div><dt>" << html_escape(label) << "</dt><dd" << (label == "status" ? " class=\"warn\"" : "") << ">"
          << html_escape(value) << "</dd></div>";
    }
    h << "</dl>\n";
    h << "<p class=\"note\">Colour: " << html_escape(criterion_meaning(o.criterion))
      << ", relative to the highest in the layer. Crossed: the " << (v.n_expert - kept) << " of " << v.n_expert
      << " experts per layer that <code>reap prune --keep-ratio " << strfmt("%g", o.keep_ratio)
      << "</code> would drop (lowest score first; with expert groups, the same number in every group). Hover a "
         "cell for its values.</p>\n";
    if (!v.groups_known) h << "<p class=\"note warn\">" << html_escape(k_groups_unknown) << "</p>\n";
    const std::string refused = kept_count_problem(v.shape, uint32_t(kept));
    if (!refused.empty()) {
        h << "<p class=\"note warn\">reap prune would refuse this ratio: " << html_escape(refused) << ".</p>\n";
    }
    h << "<div class=\"heatmap\">\n" << heatmap_svg(v, index, o) << "</div>\n";

    h << "<table class=\"layers\">\n<tr><th>layer</th><th>tokens</th><th>never activated</th>"
         "<th title=\"highest activation frequency / mean activation frequency\">skew (max/mean freq.)</th>"
         "<th title=\"Gini coefficient of the activation counts: 0 = evenly used\">Gini (counts)</th>"
         "<th>highest "
      << criterion_name(o.criterion) << "</th><th>lowest " << criterion_name(o.criterion)
      << "</th><th>dropped at " << strfmt("%g", o.keep_ratio) << "</th></tr>\n";
    for (const auto & l : v.layers) {
        h << "<tr><td>" << l.il << "</td><td>" << l.L->total_tokens << "</td><td class=\"ids\">";
        if (l.never.empty()) {
            h << "0";
        } else {
            h << (l.never.size() <= 16 ? std::to_string(l.never.size()) + ": " : "") << ids_html(l.never);
        }
        h << "</td><td>" << num(l.skew) << "</td><td>" << strfmt("%.3f", l.gini_counts) << "</td>";
        h << "<td>expert " << l.top << ": " << num(l.score[l.top]) << "</td>";
        h << "<td>expert " << l.bottom << ": " << num(l.score[l.bottom]) << "</td>";
        h << "<td class=\"ids\">" << ids_html(l.dropped) << "</td></tr>\n";
    }
    h << "</table>\n</section>\n";
    return h.str();
}

std::string agreement_section(const std::vector<FileView> & files, const std::vector<PairAgreement> & pairs,
                              const ReportOptions & o) {
    std::ostringstream h;
    h << "<section id=\"agreement\">\n<h2>Agreement between runs</h2>\n";
    h << "<p class=\"note\">Per layer: Spearman's rank correlation of the " << criterion_name(o.criterion)
      << " scores (1 = same order, ties get their average rank; n/a when a run gives every expert the same score), "
         "and how far the sets of experts dropped at keep-ratio "
      << strfmt("%g", o.keep_ratio)
      << " agree: overlap |A\u2229B| / |A| and Jaccard |A\u2229B| / |A\u222aB|. Means are over the layers.</p>\n";
    h << "<table class=\"agreement-summary\">\n<tr><th>A</th><th>B</th><th>Spearman mean</th><th>lowest (layer)</th>"
         "<th>overlap mean</th><th>Jaccard mean</th></tr>\n";
    for (const auto & p : pairs) {
        h << "<tr><td>" << html_escape(files[p.a].name) << "</td><td>" << html_escape(files[p.b].name) << "</td><td>"
          << num(p.mean_rho) << "</td><td>"
          << (p.min_rho_layer >= 0 ? num(p.min_rho) + " (" + std::to_string(p.min_rho_layer) + ")" : "n/a")
          << "</td><td>" << strfmt("%.3f", p.mean_overlap) << "</td><td>" << strfmt("%.3f", p.mean_jaccard)
          << "</td></tr>\n";
    }
    h << "</table>\n";
    for (const auto & p : pairs) {
        const std::string a = html_escape(files[p.a].name), b = html_escape(files[p.b].name);
        h << "<h3>" << a << " vs " << b << "</h3>\n";
        h << "<table class=\"agreement\">\n<tr><th>layer</th><th>Spearman</th><th>overlap</th><th>Jaccard</th>"
             "<th>dropped only in "
          << a << "</th><th>dropped only in " << b << "</th></tr>\n";
        for (const auto & g : p.layers) {
            h << "<tr><td>" << g.il << "</td><td>" << num(g.rho) << "</td><td>"
              << strfmt("%zu/%zu = %.3f", g.common, g.dropped, g.overlap()) << "</td><td>"
              << strfmt("%.3f", g.jaccard()) << "</td><td class=\"ids\">" << ids_html(g.only_a)
              << "</td><td class=\"ids\">" << ids_html(g.only_b) << "</td></tr>\n";
        }
        h << "</table>\n";
    }
    h << "</section>\n";
    return h.str();
}

std::string html_page(const std::vector<FileView> & files, const std::vector<PairAgreement> & pairs,
                      const ReportOptions & o) {
    std::ostringstream h;
    std::string        names;
    for (const auto & v : files) names += (names.empty() ? "" : ", ") + v.name;
    // The policy forbids every fetch: the page is readable offline and cannot leak by loading
    // anything, whatever a stats file contains.
    h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>reap report: " << html_escape(names) << "</title>\n<style>" << k_css << "</style>\n</head>\n<body>\n";
    h << "<h1>REAP expert report</h1>\n";
    h << "<p class=\"note\">criterion <b>" << criterion_name(o.criterion) << "</b>: "
      << html_escape(criterion_meaning(o.criterion)) << " \u00b7 keep-ratio <b>" << strfmt("%g", o.keep_ratio)
      << "</b> \u00b7 reap.cpp " << REAP_VERSION << "</p>\n";
    if (files.size() > 1) {
        h << "<nav>";
        for (size_t i = 0; i < files.size(); i++) {
            h << "<a href=\"#file-" << i << "\">" << html_escape(files[i].name) << "</a>";
        }
        h << "<a href=\"#agreement\">agreement</a></nav>\n";
    }
    for (size_t i = 0; i < files.size(); i++) {
        h << file_section(files[i], i, o);
    }
    if (!pairs.empty()) {
        h << agreement_section(files, pairs, o);
    }
    h << "</body>\n</html>\n";
    return h.str();
}

}  // namespace

Report build_report(const std::vector<ReportFile> & files, const ReportOptions & opts) {
    if (files.empty()) {
        fail("no stats files to report on");
    }
    if (!criterion_info(opts.criterion).describes_model) {
        std::string choices;
        for (const auto & name : criterion_names(true)) choices += (choices.empty() ? "" : ", ") + name;
        fail("the %s criterion says nothing about the experts; choose %s", criterion_name(opts.criterion),
             choices.c_str());
    }
    MoeShape one_expert;
    one_expert.n_expert = 1;
    round_kept_count(one_expert, opts.keep_ratio);  // validates the ratio before any work
    for (size_t i = 1; i < files.size(); i++) {
        check_same_model(files[0], files[i]);
    }
    std::vector<FileView> views;
    for (const auto & f : files) {
        views.push_back(analyze(f, opts));
    }
    // Runs are often named alike (run1/stats.json, run2/stats.json): where base names collide,
    // show the paths as given, and number what is still ambiguous (the same file twice).
    auto disambiguate = [&views](auto && fix) {
        std::map<std::string, int> seen;
        for (const auto & v : views) seen[v.name]++;
        for (size_t i = 0; i < views.size(); i++) {
            if (seen[views[i].name] > 1) fix(views[i], i);
        }
    };
    disambiguate([](FileView & v, size_t) { v.name = v.file->path; });
    disambiguate([](FileView & v, size_t i) { v.name += strfmt(" (#%zu)", i + 1); });
    // All pairs: with the handful of runs people compare, every pair is still a short page.
    std::vector<PairAgreement> pairs;
    for (size_t a = 0; a < views.size(); a++) {
        for (size_t b = a + 1; b < views.size(); b++) {
            pairs.push_back(compare(views[a], views[b], a, b));
        }
    }
    return {html_page(views, pairs, opts), text_summary(views, pairs, opts)};
}

}  // namespace reap
