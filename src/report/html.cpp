#include "report/html.h"

#include "core/error.h"
#include "core/text.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace reap {

using nlohmann::json;

std::string html_escape(const std::string & s) {
    std::string o;
    o.reserve(s.size());
    for (char c : valid_utf8(s)) {  // a page in UTF-8 holds no invalid byte
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}

namespace report {

namespace {

// A table cell's worth of expert ids; long lists fold away (<details> needs no script) so that
// a 256-expert model still gives a table one can scan.
std::string ids_html(const std::vector<uint32_t> & v) {
    if (v.size() <= 16) return id_list(v);
    return strfmt("<details><summary>%zu experts</summary>", v.size()) + id_list(v) + "</details>";
}

// Viridis at 9 evenly spaced points: perceptually uniform and readable in grey and by most
// colour-blind readers.
constexpr unsigned char k_viridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 82, 139},
                                           {44, 114, 142}, {33, 145, 140}, {40, 174, 128},
                                           {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};

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

// Where a heatmap's parts go, from the expert and layer counts: cells shrink with more experts
// (within limits), labels thin out so that they never overlap.
struct HeatmapGeometry {
    size_t n = 0, R = 0;  // experts (columns), layers (rows)
    int    cw = 0, rh = 0, gap = 0;
    int    left = 70, top = 40, right = 110;
    int    grid_w = 0, grid_h = 0, width = 0, height = 0;
    int    label_every_col = 1, label_every_row = 1;

    HeatmapGeometry(size_t n_expert, size_t n_layers) : n(n_expert), R(n_layers) {
        cw              = std::clamp(int(1000 / std::max<size_t>(n, 1)), 4, 26);  // cell width
        rh              = std::clamp(cw, 9, 26);                                  // row height
        gap             = cw >= 8 ? 1 : 0;
        grid_w          = int(n) * cw;
        grid_h          = int(R) * rh;
        width           = std::max(left + grid_w + right, 720);
        height          = top + grid_h + 64;
        label_every_col = std::max(1, int(std::ceil(22.0 / cw)));
        label_every_row = std::max(1, int(std::ceil(12.0 / rh)));
    }
};

// The svg element's opening tag, the axis titles and the expert ids along the top.
void heatmap_header(std::ostringstream & s, const HeatmapGeometry & g, const ReportOptions & o) {
    s << strfmt(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
        "role=\"img\" aria-label=\"heatmap of the %s score per layer and expert\">\n",
        g.width, g.height, g.width, g.height, criterion_name(o.criterion));
    s << strfmt("<text class=\"axis\" x=\"%d\" y=\"12\">expert \u2192</text>\n", g.left);
    s << strfmt("<text class=\"axis\" x=\"4\" y=\"%d\">layer \u2193</text>\n", g.top - 8);
    s << strfmt("<text class=\"axis\" x=\"%d\" y=\"%d\">layer max</text>\n", g.left + g.grid_w + 8, g.top - 8);
    for (size_t e = 0; e < g.n; e += size_t(g.label_every_col)) {
        s << strfmt("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%zu</text>\n", g.left + (double(e) + 0.5) * g.cw,
                    g.top - 8, e);
    }
}

// Row r: its labels, a cell per expert with the values in its tooltip, a cross per dropped expert.
void heatmap_row(std::ostringstream & s, const HeatmapGeometry & g, const LayerView & l, size_t r,
                 const ReportOptions & o) {
    const int    cw = g.cw, rh = g.rh, gap = g.gap, left = g.left;
    const double maxs = l.score[l.top];
    const int    y    = g.top + int(r) * rh;
    if (r % size_t(g.label_every_row) == 0) {
        s << strfmt("<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"central\">%d</text>\n", left - 6,
                    y + rh / 2.0, l.il);
        s << strfmt("<text x=\"%d\" y=\"%.1f\" dominant-baseline=\"central\">%s</text>\n", left + g.grid_w + 8,
                    y + rh / 2.0, num(maxs).c_str());
    }
    for (uint32_t e = 0; e < l.score.size(); e++) {
        const bool   never   = l.L->count[e] == 0;
        const bool   dropped = std::binary_search(l.dropped.begin(), l.dropped.end(), e);
        const double rel     = maxs > 0 ? l.score[e] / maxs : 0.0;
        const int    x       = left + int(e) * cw;
        std::string tip = strfmt("layer %d, expert %u\n%s %s (%.0f%% of the layer max)\ncount %llu, frequency %s", l.il,
                                 e, criterion_name(o.criterion), num(l.score[e]).c_str(), 100.0 * rel,
                                 (unsigned long long) l.L->count[e], num(l.freq[e]).c_str());
        if (never) tip += "\nnever activated";
        if (dropped) tip += strfmt("\ndropped at keep-ratio %g", o.keep_ratio);
        s << strfmt(
            "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>\n",
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
void heatmap_legend(std::ostringstream & s, const HeatmapGeometry & g, size_t file_index, const ReportOptions & o) {
    const int left = g.left;
    const int ly   = g.top + g.grid_h + 22;
    s << strfmt("<defs><linearGradient id=\"reap-scale-%zu\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">", file_index);
    for (int i = 0; i < 9; i++) {
        s << strfmt("<stop offset=\"%.3f\" stop-color=\"%s\"/>", i / 8.0, colour(i / 8.0).c_str());
    }
    s << "</linearGradient></defs>\n";
    s << strfmt("<text x=\"%d\" y=\"%d\" text-anchor=\"end\" dominant-baseline=\"central\">0</text>\n", left - 6,
                ly + 7);
    s << strfmt(
        "<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"220\" height=\"14\" fill=\"url(#reap-scale-%zu)\"/>\n", left,
        ly, file_index);
    s << strfmt("<text x=\"%d\" y=\"%d\" dominant-baseline=\"central\">layer max</text>\n", left + 226, ly + 7);
    s << strfmt("<text class=\"axis\" x=\"%d\" y=\"%d\">%s / highest %s in the layer</text>\n", left, ly + 30,
                criterion_name(o.criterion), criterion_name(o.criterion));
    const int gx = left + 300;
    s << strfmt("<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", gx, ly,
                k_never_colour);
    s << strfmt("<text x=\"%d\" y=\"%d\" dominant-baseline=\"central\">never activated</text>\n", gx + 20, ly + 7);
    const int dx = gx + 130;
    s << strfmt("<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", dx, ly,
                colour(0.1).c_str());
    s << strfmt(
        "<path class=\"legend-drop\" d=\"M%d %dL%d %dM%d %dL%d %d\" stroke=\"#ff2d55\" stroke-width=\"2\" "
        "stroke-linecap=\"round\"/>\n",
        dx + 3, ly + 3, dx + 11, ly + 11, dx + 3, ly + 11, dx + 11, ly + 3);
    s << strfmt("<text x=\"%d\" y=\"%d\" dominant-baseline=\"central\">dropped at keep-ratio %g</text>\n", dx + 20,
                ly + 7, o.keep_ratio);
}

// One file's heatmap: a row per layer, a column per expert, colour = score / the layer's
// highest score. Pruning ranks experts within a layer, so a per-layer scale shows what decides
// it; a global scale would let one high-norm layer wash out the others. The layer's highest
// score is printed at the right of each row, the exact values are in the tooltips.
std::string heatmap_svg(const FileView & v, size_t file_index, const ReportOptions & o) {
    const HeatmapGeometry g(v.n_expert, v.layers.size());
    std::ostringstream    s;
    heatmap_header(s, g, o);
    for (size_t r = 0; r < g.R; r++) {
        heatmap_row(s, g, v.layers[r], r, o);
    }
    heatmap_legend(s, g, file_index, o);
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
    h << "<p class=\"note" << (v.convergence.moving ? " warn" : "") << "\">" << html_escape(v.convergence.summary())
      << "</p>\n";
    h << "<p class=\"note\">Super experts (reap prune protects them unless --no-protect-super-experts): "
      << html_escape(v.supers.measured ? v.supers.rule_text() : "n/a: no max_activation in this stats file")
      << "</p>\n";
    h << "<div class=\"heatmap\">\n" << heatmap_svg(v, index, o) << "</div>\n";

    h << "<table class=\"layers\">\n<tr><th>layer</th><th>tokens</th><th>never activated</th>"
         "<th title=\"highest activation frequency / mean activation frequency\">skew (max/mean freq.)</th>"
         "<th title=\"Gini coefficient of the activation counts: 0 = evenly used\">Gini (counts)</th>"
         "<th>highest "
      << criterion_name(o.criterion) << "</th><th>lowest " << criterion_name(o.criterion) << "</th><th>dropped at "
      << strfmt("%g", o.keep_ratio) << "</th><th>super experts</th></tr>\n";
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
        h << "<td class=\"ids\">" << ids_html(l.dropped) << "</td><td class=\"ids\">" << ids_html(l.super)
          << "</td></tr>\n";
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

}  // namespace

std::string html_page(const std::vector<FileView> & files, const std::vector<PairAgreement> & pairs,
                      const ReportOptions & o) {
    std::ostringstream h;
    std::string        names;
    for (const auto & v : files)
        names += (names.empty() ? "" : ", ") + v.name;
    // The policy forbids every fetch: the page is readable offline and cannot leak by loading
    // anything, whatever a stats file contains.
    h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>reap report: " << html_escape(names) << "</title>\n<style>" << k_css << "</style>\n</head>\n<body>\n";
    h << "<h1>REAP expert report</h1>\n";
    h << "<p class=\"note\">criterion <b>" << criterion_name(o.criterion)
      << "</b>: " << html_escape(criterion_meaning(o.criterion)) << " \u00b7 keep-ratio <b>"
      << strfmt("%g", o.keep_ratio) << "</b> \u00b7 reap.cpp " << REAP_VERSION << "</p>\n";
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

}  // namespace report
}  // namespace reap
