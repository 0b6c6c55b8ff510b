#include "sweep/sweep_html.h"

#include "core/error.h"
#include "core/text.h"
#include "report/html.h"
#include "sweep/sweep_choice.h"

#include <algorithm>
#include <functional>
#include <map>
#include <sstream>

namespace reap {

namespace {

using json = nlohmann::json;

const char * const k_colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"};

// A y value of an entry, or nothing where the entry lacks it.
using Metric = std::function<std::optional<double>(const json &)>;

std::string fmt(double v) { return strfmt("%.3g", v); }

std::string str_or(const json & e, const char * key, const std::string & def) {
    return e.contains(key) && e[key].is_string() ? e[key].get<std::string>() : def;
}

// A curve of the charts: a criterion, or the unpruned base's quantized points, and the quant type
// ("reap", "reap Q4_0", "unpruned Q4_0").
std::string curve_of(const json & e) {
    const std::string c = str_or(e, "criterion", "");
    const std::string q = str_or(e, "quant", "none");
    return (c == "none" ? "unpruned" : c) + (q == "none" ? "" : " " + q);
}

// The frame both kinds of chart share: an SVG of W x H with the plot inside the margins, x
// (file size, MiB) from x0 to x1, y from 0 to y1; its axes, four ticks on each and the x label.
struct ChartFrame {
    double W, H, x0, x1, y1;
    double L = 56, R = 12, T = 12, B = 40;

    double px(double x) const { return L + (x - x0) / (x1 - x0) * (W - L - R); }
    double py(double y) const { return T + (1 - y / y1) * (H - T - B); }

    // The <figure> (of `figure_class`, none when empty) and <svg> opened, the caption, the axes.
    std::string open(const std::string & caption, const char * figure_class) const {
        std::ostringstream s;
        s << "<figure" << (*figure_class ? std::string(" class=\"") + figure_class + "\"" : "") << "><figcaption>"
          << caption << "</figcaption>\n<svg width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << ' '
          << H << "\" role=\"img\">\n";
        s << strfmt("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"axis\"/>", L, H - B, W - R, H - B);
        s << strfmt("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"axis\"/>\n", L, T, L, H - B);
        for (int i = 0; i <= 4; i++) {
            const double y = y1 * i / 4, x = x0 + (x1 - x0) * i / 4;
            s << strfmt("<text x=\"%g\" y=\"%g\" class=\"tick\" text-anchor=\"end\">%s</text>", L - 4, py(y) + 4,
                        fmt(y).c_str());
            s << strfmt("<text x=\"%g\" y=\"%g\" class=\"tick\" text-anchor=\"middle\">%s</text>\n", px(x), H - B + 14,
                        fmt(x).c_str());
        }
        s << strfmt("<text x=\"%g\" y=\"%g\" class=\"tick\" text-anchor=\"middle\">file size (MiB)</text>\n",
                    (L + W - R) / 2, H - 6);
        return s.str();
    }
    // The tolerance as a dashed line across the plot.
    std::string limit_line(double limit) const {
        return strfmt(
            "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"limit\"><title>tolerance %s</title></line>\n", L,
            py(limit), W - R, py(limit), fmt(limit).c_str());
    }
};

// The frontier: every point (the base too) at its file size and worst-domain KL; the points on
// the lower-left Pareto frontier (sweep_choice.h's pareto_frontier) filled and joined by a step
// line, the others hollow.
std::string frontier_chart(const json & report) {
    struct Pt {
        double      x, y;
        bool        front, chosen;
        std::string name;
    };
    std::vector<Pt> pts;
    const json &    base = report["base"];
    pts.push_back({base.value("file_size", 0.0) / 1048576.0, 0.0, true, false, "base " + str_or(base, "model", "")});
    for (const json & m : report["models"]) {
        pts.push_back({m.value("file_size", 0.0) / 1048576.0, worst_kl_of(m), m.value("on_frontier", false),
                       m.value("chosen", false), str_or(m, "model", "") + " (" + curve_of(m) + ")"});
    }
    double x0 = 1e300, x1 = 0, y1 = report["tolerance"].value("max_kl", 0.0);
    for (const Pt & p : pts) {
        x0 = std::min(x0, p.x);
        x1 = std::max(x1, p.x);
        y1 = std::max(y1, p.y);
    }
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= 0) y1 = 1;
    y1 *= 1.08;
    const ChartFrame   f{520, 320, x0, x1, y1};
    auto               px = [&](double x) { return f.px(x); };
    auto               py = [&](double y) { return f.py(y); };
    std::ostringstream s;
    s << f.open("frontier: file size against worst-domain KL, every point (pruned, quantized, both)", "frontier");
    s << f.limit_line(report["tolerance"].value("max_kl", 0.0));
    std::vector<Pt> front;
    for (const Pt & p : pts) {
        if (p.front) front.push_back(p);
    }
    std::sort(front.begin(), front.end(), [](const Pt & a, const Pt & b) { return a.x < b.x; });
    // A staircase: from each frontier point right at its KL, then down to the next one's.
    s << "<polyline class=\"front\" fill=\"none\" points=\"";
    for (size_t i = 0; i < front.size(); i++) {
        s << strfmt("%.1f,%.1f ", px(front[i].x), py(front[i].y));
        if (i + 1 < front.size()) s << strfmt("%.1f,%.1f ", px(front[i + 1].x), py(front[i].y));
    }
    s << "\"/>\n";
    // The beaten points first, so a frontier point at the same place is drawn over them.
    std::stable_sort(pts.begin(), pts.end(), [](const Pt & a, const Pt & b) { return !a.front && b.front; });
    for (const Pt & p : pts) {
        s << strfmt(
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" class=\"%s\"><title>%s: %s MiB, worst KL %s%s</title></circle>",
            px(p.x), py(p.y), p.front ? "on-front" : "off-front", html_escape(p.name).c_str(), fmt(p.x).c_str(),
            fmt(p.y).c_str(), p.front ? " (on the frontier)" : "");
        if (p.chosen) {
            s << strfmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" class=\"chosen\"><title>the answer</title></circle>",
                        px(p.x), py(p.y));
        }
    }
    s << "</svg>\n<div class=\"legend\"><span>&#9679; on the frontier</span> <span>&#9675; beaten by a smaller, "
         "closer point</span> <span>&#9711; answer</span> <span>- - tolerance</span></div></figure>\n";
    return s.str();
}

// One chart: x = file size (MiB), y = metric; a polyline per criterion, the base as a square,
// the chosen model ringed, the tolerance as a dashed line.
std::string chart(const json & report, const std::string & title, const Metric & metric, std::optional<double> limit) {
    const json &                                                  models = report["models"];
    std::map<std::string, std::vector<std::pair<double, double>>> lines;
    std::vector<std::pair<double, double>>                        chosen;
    double                                                        x0 = 1e300, x1 = 0, y1 = limit.value_or(0);
    auto                                                          add_extent = [&](double x, double y) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y1 = std::max(y1, y);
    };
    const auto   base_y = metric(report["base"]);
    const double base_x = report["base"].value("file_size", 0.0) / 1048576.0;
    if (base_y) add_extent(base_x, *base_y);
    // The quant types that pruned points have: an unpruned quantized point starts each of their
    // curves ("reap Q4_0" from "unpruned Q4_0" through every ratio); alone only without them.
    std::map<std::string, std::vector<std::string>> pruned_curves;  // quant -> curves
    for (const json & m : models) {
        if (str_or(m, "criterion", "") != "none" && str_or(m, "quant", "none") != "none") {
            auto & c = pruned_curves[str_or(m, "quant", "none")];
            if (std::find(c.begin(), c.end(), curve_of(m)) == c.end()) c.push_back(curve_of(m));
        }
    }
    for (const json & m : models) {
        const auto y = metric(m);
        if (!y) continue;
        const double x      = m.value("file_size", 0.0) / 1048576.0;
        const auto   starts = pruned_curves.find(str_or(m, "quant", "none"));
        if (str_or(m, "criterion", "") == "none" && starts != pruned_curves.end()) {
            for (const std::string & c : starts->second)
                lines[c].push_back({x, *y});
        } else {
            lines[curve_of(m)].push_back({x, *y});
        }
        if (m.value("chosen", false)) chosen.push_back({x, *y});
        add_extent(x, *y);
    }
    if (lines.empty()) return "";
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= 0) y1 = 1;
    y1 *= 1.08;
    const ChartFrame   f{420, 260, x0, x1, y1};
    auto               px = [&](double x) { return f.px(x); };
    auto               py = [&](double y) { return f.py(y); };
    std::ostringstream s;
    s << f.open(html_escape(title), "");
    if (limit) s << f.limit_line(*limit);
    size_t             c = 0;
    std::ostringstream legend;
    for (auto & [name, pts] : lines) {
        std::sort(pts.begin(), pts.end());
        const char * colour = k_colours[c++ % (sizeof k_colours / sizeof *k_colours)];
        s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
        for (const auto & [x, y] : pts)
            s << strfmt("%.1f,%.1f ", px(x), py(y));
        s << "\"/>\n";
        for (const auto & [x, y] : pts) {
            s << strfmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s: %s MiB, %s</title></circle>",
                        px(x), py(y), colour, html_escape(name).c_str(), fmt(x).c_str(), fmt(y).c_str());
        }
        legend << "<span style=\"color:" << colour << "\">&#9632; " << html_escape(name) << "</span> ";
    }
    if (base_y) {
        s << strfmt(
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" class=\"base\"><title>base: %s MiB, "
            "%s</title></rect>",
            px(base_x) - 4, py(*base_y) - 4, fmt(base_x).c_str(), fmt(*base_y).c_str());
    }
    for (const auto & [x, y] : chosen) {
        s << strfmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" class=\"chosen\"><title>the answer</title></circle>",
                    px(x), py(y));
    }
    s << "</svg>\n<div class=\"legend\">" << legend.str() << "<span>&#9633; base</span> <span>&#9711; answer</span>"
      << (limit ? " <span>- - tolerance</span>" : "") << "</div></figure>\n";
    return s.str();
}

std::optional<double> task_accuracy(const json & e, const std::string & task) {
    if (!e.contains("tasks") || !e["tasks"].contains(task)) return std::nullopt;
    return e["tasks"][task].value("accuracy", 0.0);
}

std::string table(const json & report) {
    std::vector<std::string> domains, tasks;
    const json &             base = report["base"];
    if (base.contains("domains")) {
        for (const auto & [d, v] : base["domains"].items())
            domains.push_back(d);
    }
    if (base.contains("tasks")) {
        for (const auto & [t, v] : base["tasks"].items())
            tasks.push_back(t);
    }
    const bool         gen = base.contains("generation");
    std::ostringstream s;
    s << "<table><thead><tr><th>model</th><th>criterion</th><th>pruned</th><th>quant</th><th>size</th><th>worst "
         "KL</th><th>frontier</th>";
    for (const auto & d : domains)
        s << "<th>KL " << html_escape(d) << "</th>";
    s << "<th>PPL</th><th>top-1</th>";
    if (gen) s << "<th>agreement</th><th>degeneration</th>";
    for (const auto & t : tasks)
        s << "<th>" << html_escape(t) << "</th>";
    s << "<th>within tolerance</th></tr></thead><tbody>\n";
    auto row = [&](const json & e, bool is_base) {
        s << "<tr" << (e.value("chosen", false) ? " class=\"chosen\"" : "") << "><td>"
          << html_escape(is_base ? "base " + e.value("model", std::string()) : e.value("model", std::string()))
          << "</td><td>" << html_escape(str_or(e, "criterion", "-")) << "</td><td>"
          << (is_base ? "0 %" : strfmt("%g %%", e.value("prune_ratio", 0.0) * 100)) << "</td><td>"
          << html_escape(str_or(e, "quant", "none")) << "</td><td>" << human_bytes(e.value("file_size", uint64_t(0)))
          << "</td><td>" << strfmt("%.4f", worst_kl_of(e)) << "</td><td>"
          << (is_base || e.value("on_frontier", false) ? "&#9679;" : "") << "</td>";
        for (const auto & d : domains) {
            s << "<td>"
              << (e.contains("domains") && e["domains"].contains(d)
                      ? strfmt("%.4f", e["domains"][d].value("kl_mean", 0.0))
                      : "-")
              << "</td>";
        }
        s << "<td>" << strfmt("%.3f", e.value("ppl", 0.0)) << "</td><td>"
          << strfmt("%.3f", e.value("top1_agreement", 0.0)) << "</td>";
        if (gen) {
            const json g = e.value("generation", json::object());
            s << "<td>" << strfmt("%.3f", g.value("agreement", 0.0)) << "</td><td>"
              << strfmt("%.3f", g.value("degeneration", 0.0)) << "</td>";
        }
        for (const auto & t : tasks) {
            const auto a = task_accuracy(e, t);
            s << "<td>" << (a ? strfmt("%.3f", *a) : "-") << "</td>";
        }
        s << "<td>"
          << (is_base                              ? ""
              : e.value("within_tolerance", false) ? "yes"
                                                   : html_escape(e.value("outside_tolerance", "")))
          << "</td></tr>\n";
    };
    row(base, true);
    for (const json & m : report["models"])
        row(m, false);
    s << "</tbody></table>\n";
    return s.str();
}

}  // namespace

std::string sweep_html(const json & report) {
    const json &       tol = report["tolerance"];
    std::ostringstream h;
    h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>reap sweep: "
      << html_escape(report["identity"].value("model", std::string())) << "</title>\n<style>\n"
      << "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}\n"
      << "figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}figcaption{font-weight:600}\n"
      << ".axis{stroke:#444}.tick{font-size:11px;fill:#444}.limit{stroke:#888;stroke-dasharray:5 4}\n"
      << ".base{fill:#222}.chosen{fill:none;stroke:#000;stroke-width:2}.legend span{margin-right:1em}\n"
      << "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\n"
      << "td:first-child,th:first-child{text-align:left}tr.chosen{background:#fff3b0;font-weight:600}\n"
      << ".answer{font-size:16px;padding:.5em 1em;background:#eef6ee;border-left:4px solid #2ca02c}\n"
      << ".front{stroke:#2ca02c;stroke-width:2}.on-front{fill:#2ca02c}.off-front{fill:#fff;stroke:#888}\n"
      << "</style></head><body>\n<h1>How far can " << html_escape(report["identity"].value("model", std::string()))
      << (report.value("quant", json::array()).empty() ? " be pruned?" : " be pruned and quantized?") << "</h1>\n";
    const std::string chosen      = report.value("chosen", std::string());
    bool              base_chosen = true;
    for (const json & m : report["models"])
        base_chosen = base_chosen && !m.value("chosen", false);
    h << "<p class=\"answer\">"
      << (base_chosen ? "No pruned model is within the tolerance: keep the base model, " + html_escape(chosen)
                      : "The smallest model within the tolerance: <b>" + html_escape(chosen) + "</b>")
      << "</p>\n";
    h << "<p>Tolerance: worst-domain KL &le; " << tol.value("max_kl", 0.0) << ", degeneration &le; the base's + "
      << tol.value("max_degeneration", 0.0) << " (with prompts), task accuracy &ge; "
      << tol.value("min_task_ratio", 0.0) << " of the base's (with tasks). Held-out domains: "
      << html_escape(report.value("domains", json::array()).dump(-1, ' ', false, json::error_handler_t::replace))
      << "; eval windows of " << report.value("eval_ctx", 0) << " tokens.</p>\n";
    if (!report.value("quant", json::array()).empty()) h << frontier_chart(report);
    h << chart(
        report, "worst-domain KL divergence (nats/token)", [](const json & e) { return worst_kl_of(e); },
        tol.value("max_kl", 0.0));
    h << chart(
        report, "degeneration rate",
        [](const json & e) -> std::optional<double> {
            if (!e.contains("generation")) return std::nullopt;
            return e["generation"].value("degeneration", 0.0);
        },
        // The tolerance sits above the base's own rate (sweep_choice.h).
        tol.value("max_degeneration", 0.0) +
            (report["base"].contains("generation") ? report["base"]["generation"].value("degeneration", 0.0) : 0.0));
    if (report["base"].contains("tasks")) {
        for (const auto & [task, v] : report["base"]["tasks"].items()) {
            const std::string t = task;
            h << chart(
                report, t + " accuracy", [t](const json & e) { return task_accuracy(e, t); }, std::nullopt);
        }
    }
    h << "<h2>Every model</h2>\n" << table(report);
    h << "</body></html>\n";
    return h.str();
}

}  // namespace reap
