// reap report: the rank/inequality helpers on hand-computed cases, and the page and summary on
// real stats files profiled from synthetic models.
#include "core/error.h"
#include "core/log.h"
#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"
#include "profile/profiler.h"
#include "prune/planner.h"
#include "report/report.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>

using namespace reap;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// ---- helpers -----------------------------------------------------------------------------------

TEST(Spearman, IdenticalAndReversedRanks) {
    const std::vector<double> a = {0.3, 1.5, 0.1, 7.0, 2.2};
    EXPECT_DOUBLE_EQ(spearman(a, a), 1.0);
    // Only the order counts: a monotone transform is a perfect correlation.
    std::vector<double> cubed, negated;
    for (double x : a) {
        cubed.push_back(x * x * x + 4);
        negated.push_back(-x);
    }
    EXPECT_DOUBLE_EQ(spearman(a, cubed), 1.0);
    EXPECT_DOUBLE_EQ(spearman(a, negated), -1.0);
    EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}), -1.0);
}

TEST(Spearman, TiesGetAverageRanks) {
    EXPECT_EQ(average_ranks({10, 20, 20, 5}), (std::vector<double>{2, 3.5, 3.5, 1}));
    EXPECT_EQ(average_ranks({7, 7, 7}), (std::vector<double>{2, 2, 2}));
    // a ranks 1, 2.5, 2.5, 4 against 1, 2, 3, 4: deviations (-1.5, 0, 0, 1.5) and
    // (-1.5, -0.5, 0.5, 1.5), so rho = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10).
    EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 3.0 / std::sqrt(10.0), 1e-12);
    // The textbook shortcut 1 - 6 sum d^2 / (n (n^2 - 1)) would give 0.95 here: wrong with ties.
    // Ties on both sides: ranks (1.5, 1.5, 3, 4) and (1, 2, 3.5, 3.5), deviations (-1, -1, 0.5, 1.5)
    // and (-1.5, -0.5, 1, 1): sum xy = 4, sum xx = sum yy = 4.5.
    EXPECT_NEAR(spearman({0, 0, 1, 2}, {1, 2, 3, 3}), 4.0 / 4.5, 1e-12);
}

TEST(Spearman, UndefinedWithoutAnOrder) {
    EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3})));  // one side all ties
    EXPECT_TRUE(std::isnan(spearman({1}, {2})));
    EXPECT_TRUE(std::isnan(spearman({}, {})));
    EXPECT_THROW(spearman({1, 2}, {1, 2, 3}), Error);
}

TEST(Gini, KnownValues) {
    EXPECT_NEAR(gini({5, 5, 5, 5}), 0.0, 1e-15);
    EXPECT_NEAR(gini({0.1, 0.1, 0.1}), 0.0, 1e-15);
    EXPECT_DOUBLE_EQ(gini({0, 0, 0, 7}), 0.75);  // one holder: (n-1)/n
    EXPECT_DOUBLE_EQ(gini({0, 9, 0, 0, 0, 0, 0, 0}), 7.0 / 8.0);
    EXPECT_DOUBLE_EQ(gini({4, 3, 2, 1}), 0.25);  // sum |xi-xj| / (2 n^2 mean) = 20 / 80
    EXPECT_EQ(gini({0, 0, 0}), 0.0);             // nothing routed: no inequality
    EXPECT_EQ(gini({}), 0.0);
    EXPECT_THROW(gini({1, -1}), Error);
}

TEST(DroppedUngrouped, PlannerOrderAndRounding) {
    // Ties in score go by lower count, then lower id.
    const std::vector<double>   s = {0.5, 0.1, 0.1, 0.9, 0.1};
    const std::vector<uint64_t> c = {5, 7, 3, 1, 3};
    using test::dropped_ungrouped;
    EXPECT_EQ(dropped_ungrouped(s, c, 0.8), (std::vector<uint32_t>{2}));        // keep 4
    EXPECT_EQ(dropped_ungrouped(s, c, 0.6), (std::vector<uint32_t>{2, 4}));     // keep 3
    EXPECT_EQ(dropped_ungrouped(s, c, 0.4), (std::vector<uint32_t>{1, 2, 4}));  // keep 2
    EXPECT_EQ(dropped_ungrouped(s, c, 1.0), (std::vector<uint32_t>{}));
    EXPECT_EQ(dropped_ungrouped(s, c, 0.01), (std::vector<uint32_t>{0, 1, 2, 4}));  // at least one stays
    EXPECT_THROW(dropped_ungrouped(s, c, 0.0), Error);
    EXPECT_THROW(dropped_ungrouped(s, c, 1.5), Error);
    EXPECT_THROW(dropped_ungrouped(s, c, std::nan("")), Error);
}

TEST(HtmlEscape, AllSpecialCharacters) {
    EXPECT_EQ(html_escape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;");
    EXPECT_EQ(html_escape("plain.json"), "plain.json");
}

// ---- real stats files ----------------------------------------------------------------------------

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
const std::string k_text   = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

synth::Options small_model(int n_layer = 2, int n_expert = 0) {
    synth::Options o;
    o.arch     = "qwen3moe";
    o.n_layer  = n_layer;
    o.n_expert = n_expert;
    return o;
}

// Profiles `model` once per test process; "jsonl" runs 8 calibration samples, "text" the plain
// text sample in 64-token windows: the same model seen through different data.
std::string profiled(const synth::Options & m, const std::string & data) {
    static std::map<std::string, std::string> cache;
    const std::string                         model = test::synth_model(m);
    const std::string                         key   = model + "|" + data;
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    const fs::path dir = fs::path(REAP_TEST_TMP) / ("report-stats-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    test::remove_when_tests_end(dir.string());
    log_init(LogLevel::error);  // llama.cpp's loading chatter
    ProfileOptions p =
        test::profile_options(model, (dir / (fs::path(model).stem().string() + "-" + data + ".json")).string());
    p.data        = {data == "jsonl" ? k_sample : k_text};
    p.n_ctx       = data == "jsonl" ? 512 : 64;
    p.max_samples = 8;
    run_profile(p);
    return cache[key] = p.output;
}

size_t count_of(const std::string & hay, const std::string & needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size()))
        n++;
    return n;
}

std::string read_text(const std::string & path) {
    const auto b = test::read_bytes(path);
    return std::string(b.begin(), b.end());
}

// No resource outside the page: the only URL is the SVG namespace name, which is never fetched.
void expect_self_contained(const std::string & html) {
    std::string rest = html;
    for (size_t at; (at = rest.find("xmlns=\"http://www.w3.org/2000/svg\"")) != std::string::npos;)
        rest.erase(at, 34);
    EXPECT_EQ(rest.find("http://"), std::string::npos);
    EXPECT_EQ(rest.find("https://"), std::string::npos);
    EXPECT_EQ(rest.find("<script"), std::string::npos);
    EXPECT_EQ(rest.find("<link"), std::string::npos);
    EXPECT_EQ(rest.find("@import"), std::string::npos);
    EXPECT_EQ(rest.find("src="), std::string::npos);
    std::regex url(R"(url\((?!#))");
    EXPECT_FALSE(std::regex_search(rest, url)) << "a url() that is not a fragment";
    EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
}

TEST(Report, HeatmapCellsAndDropMarksOnRealStats) {
    const std::string path = profiled(small_model(), "jsonl");
    const ExpertStats s    = ExpertStats::load(path);
    ASSERT_EQ(s.layers.size(), 2u);
    const size_t n = s.layers.begin()->second.n_expert();
    ASSERT_EQ(n, 16u);

    for (double ratio : {0.5, 0.75, 0.25}) {
        SCOPED_TRACE("keep ratio " + std::to_string(ratio));
        const Report r = build_report({{path, s}}, {Criterion::reap, ratio});
        EXPECT_EQ(r.html.rfind("<!DOCTYPE html>", 0), 0u);
        EXPECT_EQ(count_of(r.html, "<svg"), 1u);
        EXPECT_EQ(count_of(r.html, "<rect class=\"cell\""), s.layers.size() * n);
        const size_t dropped = n - size_t(std::lround(double(n) * ratio));
        EXPECT_EQ(count_of(r.html, "class=\"drop\""), s.layers.size() * dropped);
        // Every cell carries its values as a tooltip.
        EXPECT_EQ(count_of(r.html, "<title>layer "), s.layers.size() * n);
        expect_self_contained(r.html);
    }
    const Report r = build_report({{path, s}}, {Criterion::reap, 0.5});
    EXPECT_NE(r.html.find("qwen3moe"), std::string::npos);
    EXPECT_NE(r.html.find(s.meta["date"].get<std::string>()), std::string::npos);
    EXPECT_NE(r.html.find(fs::path(path).filename().string()), std::string::npos);
    // The planted dead experts are never routed: the page and the summary list them.
    for (const auto & [il, L] : s.layers) {
        ASSERT_GT(L.never_activated(), 0u) << "layer " << il;
    }
    // The colours follow the scores: more than two distinct fills.
    std::set<std::string> fills;
    std::smatch           m;
    std::regex            fill_re("class=\"cell\"[^>]*fill=\"(#[0-9a-f]{6})\"");
    for (auto it = std::sregex_iterator(r.html.begin(), r.html.end(), fill_re); it != std::sregex_iterator(); ++it) {
        fills.insert((*it)[1]);
    }
    EXPECT_GT(fills.size(), 4u);
}

TEST(Report, SummaryLinesMatchTheStatistics) {
    const std::string path = profiled(small_model(), "jsonl");
    const ExpertStats s    = ExpertStats::load(path);
    const Report      r    = build_report({{path, s}}, {Criterion::frequency, 0.5});
    for (const auto & [il, L] : s.layers) {
        const auto        f    = L.activation_frequency();
        const double      mean = std::accumulate(f.begin(), f.end(), 0.0) / double(f.size());
        const auto        top  = size_t(std::max_element(f.begin(), f.end()) - f.begin());
        const std::string line = strfmt("layer %3d: never activated %u", il, L.never_activated());
        const size_t      at   = r.text.find(line);
        ASSERT_NE(at, std::string::npos) << r.text;
        const std::string rest = r.text.substr(at, r.text.find('\n', at) - at);
        EXPECT_NE(rest.find(strfmt("skew %.4g", *std::max_element(f.begin(), f.end()) / mean)), std::string::npos)
            << rest;
        EXPECT_NE(rest.find(strfmt("gini %.3f", gini(std::vector<double>(L.count.begin(), L.count.end())))),
                  std::string::npos)
            << rest;
        EXPECT_NE(rest.find(strfmt("top expert %zu", top)), std::string::npos) << rest;
    }
}

TEST(Report, MarkedExpertsAreWhatPruneWouldDrop) {
    // The report's analysis (from the stats file alone) marks what the planner (from the model's
    // shape) drops. Grouped models: PruneRequest.ReportDropsWhatPruneDropsOnAGroupedModel.
    const synth::Options m    = small_model();
    const std::string    path = profiled(m, "jsonl");
    const ReportFile     file{path, ExpertStats::load(path)};
    const MoeLayout      lay = analyze_moe(GgufFile::open(test::synth_model(m)));
    for (Criterion c : {Criterion::reap, Criterion::ean, Criterion::frequency, Criterion::weighted_frequency}) {
        for (uint32_t kept : {4u, 8u, 12u}) {
            const Plan             p = make_plan(file.stats, lay.shape(), c, kept, 0);
            const report::FileView v = report::analyze(file, {c, double(kept) / 16.0});
            EXPECT_EQ(v.kept, kept);
            ASSERT_EQ(v.layers.size(), p.layers.size());
            for (const auto & l : v.layers) {
                EXPECT_EQ(l.dropped, p.layers.at(l.il).dropped)
                    << criterion_name(c) << " keep " << kept << " layer " << l.il;
            }
        }
    }
}

TEST(Report, AgreementBetweenRuns) {
    const std::string a = profiled(small_model(), "jsonl"), b = profiled(small_model(), "text");
    const ExpertStats sa = ExpertStats::load(a), sb = ExpertStats::load(b);
    ASSERT_NE(sa.meta["tokens"], sb.meta["tokens"]);

    // A run against itself agrees completely.
    const Report same = build_report({{a, sa}, {a, sa}}, {Criterion::reap, 0.5});
    EXPECT_NE(same.text.find("Spearman mean 1 (lowest 1 in layer 0)"), std::string::npos) << same.text;
    EXPECT_NE(same.text.find("overlap mean 1.000, Jaccard mean 1.000"), std::string::npos) << same.text;

    const Report r = build_report({{a, sa}, {b, sb}}, {Criterion::reap, 0.5});
    EXPECT_EQ(count_of(r.html, "<svg"), 2u);
    EXPECT_EQ(count_of(r.html, "<rect class=\"cell\""), 2u * 2u * 16u);
    EXPECT_EQ(count_of(r.html, "class=\"drop\""), 2u * 2u * 8u);
    EXPECT_NE(r.html.find("Agreement between runs"), std::string::npos);
    expect_self_contained(r.html);
    // The summary's per-layer figures, recomputed here.
    double rho_sum = 0, overlap_sum = 0;
    for (const auto & [il, La] : sa.layers) {
        const LayerStats &    Lb  = sb.layers.at(il);
        const auto            sca = La.reap(), scb = Lb.reap();
        const double          rho = spearman(sca, scb);
        const auto            da  = test::dropped_ungrouped(sca, La.count, 0.5);
        const auto            db  = test::dropped_ungrouped(scb, Lb.count, 0.5);
        std::vector<uint32_t> both;
        std::set_intersection(da.begin(), da.end(), db.begin(), db.end(), std::back_inserter(both));
        std::set<uint32_t> any(da.begin(), da.end());
        any.insert(db.begin(), db.end());
        EXPECT_NE(r.text.find(strfmt("layer %3d: Spearman %.4g, overlap %zu/8 = %.3f, Jaccard %.3f", il, rho,
                                     both.size(), both.size() / 8.0, double(both.size()) / double(any.size()))),
                  std::string::npos)
            << r.text;
        rho_sum += rho;
        overlap_sum += both.size() / 8.0;
    }
    EXPECT_NE(r.text.find(strfmt("Spearman mean %.4g", rho_sum / 2)), std::string::npos) << r.text;
    EXPECT_NE(r.text.find(strfmt("pruned-set overlap mean %.3f", overlap_sum / 2)), std::string::npos) << r.text;
    // Three files: every pair.
    const Report three = build_report({{a, sa}, {b, sb}, {a, sa}}, {Criterion::ean, 0.5});
    EXPECT_EQ(count_of(three.text, " vs "), 3u);
}

TEST(Report, StatsOfDifferentModelsAreRefused) {
    const std::string a             = profiled(small_model(2), "jsonl");
    const std::string more_layers   = profiled(small_model(3), "jsonl");
    const std::string fewer_experts = profiled(small_model(2, 8), "jsonl");
    const ExpertStats sa            = ExpertStats::load(a);
    for (const std::string & other : {more_layers, fewer_experts}) {
        try {
            build_report({{a, sa}, {other, ExpertStats::load(other)}}, {});
            ADD_FAILURE() << "no error for " << other;
        } catch (const Error & e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind(other + ": ", 0), 0u) << msg;
            EXPECT_NE(msg.find("statistics of different models"), std::string::npos) << msg;
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        }
    }
    // Alone, each is fine.
    EXPECT_NO_THROW(build_report({{fewer_experts, ExpertStats::load(fewer_experts)}}, {}));
    EXPECT_THROW(build_report({{a, sa}}, {Criterion::random, 0.5}), Error);
    EXPECT_THROW(build_report({}, {}), Error);
}

TEST(Report, PrototypeFileWithoutMetaAndAnIdleLayer) {
    // The earlier prototype's layout: no "_meta", means instead of sums. Layer 5 saw no tokens.
    const std::string dir = test::tmp_dir();
    json              j   = {{"3",
                              {{"total_tokens", 10},
                               {"activation_counts", {6, 0, 10, 4}},
                               {"reap", {0.5, 0.0, 0.9, 0.2}},
                               {"ean_mean", {1.0, 0.0, 1.5, 0.7}},
                               {"avg_gate_weight", {0.4, 0.0, 0.6, 0.3}}}},
                             {"5", {{"total_tokens", 0}, {"activation_counts", {0, 0, 0, 0}}, {"reap", {0, 0, 0, 0}}}},
                             {"model_info", "ignored by readers"}};
    std::ofstream(dir + "/proto.json") << j.dump();
    const ExpertStats s = ExpertStats::load(dir + "/proto.json");
    const Report      r = build_report({{dir + "/proto.json", s}, {dir + "/proto.json", s}}, {Criterion::reap, 0.5});
    EXPECT_EQ(count_of(r.html, "<rect class=\"cell\""), 2u * 2u * 4u);
    EXPECT_EQ(count_of(r.html, "class=\"drop\""), 2u * 2u * 2u);
    EXPECT_NE(r.text.find("layer   3: never activated 1 [1]; skew 2 (gini 0.400); top expert 2 (0.9), bottom 1 (0)"),
              std::string::npos)
        << r.text;
    // An idle layer has no skew and no ranking: n/a, and left out of the mean.
    EXPECT_NE(r.text.find("layer   5: never activated 4 [0-3]; skew n/a (gini 0.000)"), std::string::npos) << r.text;
    EXPECT_NE(r.text.find("layer   5: Spearman n/a"), std::string::npos) << r.text;
    EXPECT_NE(r.text.find("Spearman mean 1 (lowest 1 in layer 3)"), std::string::npos) << r.text;
}

TEST(ReportCli, DeeplyNestedMetaIsRefusedNotAStackOverflow) {
    // Copying or walking a value recursed once per level: a _meta nested 100k deep overflowed
    // the stack. Files are refused past 64 levels while parsing, for every JSON reader.
    const std::string dir  = test::tmp_dir();
    json              base = json::parse(read_text(profiled(small_model(), "jsonl")));
    auto              nest = [&](int levels, const std::string & path) {
        // The file and _meta are 2 levels; the rest are arrays in _meta.deep.
        const std::string deep = std::string(size_t(levels - 2), '[') + std::string(size_t(levels - 2), ']');
        std::string       text = base.dump();
        text.insert(text.find("\"_meta\":{") + 9, "\"deep\":" + deep + ",");
        std::ofstream(path) << text;
    };
    nest(64, dir + "/ok.json");
    EXPECT_NO_THROW(ExpertStats::load(dir + "/ok.json"));
    nest(65, dir + "/deep.json");
    EXPECT_THROW(ExpertStats::load(dir + "/deep.json"), Error);
    nest(100000, dir + "/deep100k.json");
    const auto r = test::run_reap({"report", dir + "/deep100k.json", "-o", dir + "/r.html"});
    EXPECT_EQ(r.signal, 0) << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(dir + "/deep100k.json: not a valid stats file (JSON nested deeper than 64 levels)"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(dir + "/r.html"));
}

TEST(Report, FileNamesAreEscaped) {
    const std::string dir  = test::tmp_dir();
    const std::string evil = dir + "/<b>x&y\"z'.json";
    fs::copy_file(profiled(small_model(), "jsonl"), evil);
    const Report r = build_report({{evil, ExpertStats::load(evil)}}, {});
    EXPECT_EQ(r.html.find("<b>x"), std::string::npos);
    EXPECT_NE(r.html.find("&lt;b&gt;x&amp;y&quot;z&#39;.json"), std::string::npos);
}

// ---- the command line ----------------------------------------------------------------------------

TEST(ReportCli, WritesThePageAndPrintsTheSummary) {
    const std::string dir = test::tmp_dir();
    const std::string a = profiled(small_model(), "jsonl"), b = profiled(small_model(), "text");
    const std::string out = dir + "/report.html";
    const auto        r   = test::run_reap({"report", a, b, "-o", out, "--criterion", "ean", "--keep-ratio", "0.75"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    const std::string html = read_text(out);
    EXPECT_EQ(count_of(html, "<rect class=\"cell\""), 2u * 2u * 16u);
    EXPECT_EQ(count_of(html, "class=\"drop\""), 2u * 2u * 4u);
    expect_self_contained(html);
    EXPECT_NE(r.out.find(a + ": model "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("criterion ean; keep-ratio 0.75 keeps 12 of 16"), std::string::npos) << r.out;
    EXPECT_EQ(count_of(r.out, "never activated"), 4u) << r.out;  // a line per layer and file
    EXPECT_NE(r.out.find(a + " vs " + b + ": Spearman mean "), std::string::npos) << r.out;
    EXPECT_GE(r.out.size(), ("wrote " + out + "\n").size());
    EXPECT_EQ(r.out.substr(r.out.size() - out.size() - 7), "wrote " + out + "\n");
    // Same page from the library.
    EXPECT_EQ(html, build_report({{a, ExpertStats::load(a)}, {b, ExpertStats::load(b)}}, {Criterion::ean, 0.75}).html);
}

TEST(ReportCli, BadInputsFailWithOneLine) {
    const std::string dir = test::tmp_dir();
    const std::string a   = profiled(small_model(), "jsonl");
    const std::string out = dir + "/r.html";
    std::ofstream(dir + "/broken.json") << "{\"0\": {\"total_tokens\": 3,";
    std::ofstream(dir + "/empty.json") << "{}";
    const std::string other = profiled(small_model(3), "jsonl");

    auto refuse = [&](std::vector<std::string> args, const std::string & why) {
        SCOPED_TRACE(why);
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1);
        EXPECT_EQ(r.signal, 0);
        EXPECT_EQ(r.err.rfind("reap: error: ", 0), 0u) << r.err;
        EXPECT_EQ(count_of(r.err, "\n"), 1u) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        EXPECT_FALSE(fs::exists(out)) << "a page was written";
    };
    refuse({"report", dir + "/missing.json", "-o", out}, dir + "/missing.json: cannot open");
    refuse({"report", a, dir + "/broken.json", "-o", out}, dir + "/broken.json: not valid JSON");
    refuse({"report", dir + "/empty.json", "-o", out}, dir + "/empty.json: no layer statistics");
    refuse({"report", a, other, "-o", out}, other + ": n_layer is 3, but 2 in the first file");
    refuse({"report", a, other, "-o", out}, "statistics of different models");
    // A keep ratio outside (0, 1] is a usage error (exit 2), prune's rule: before any file is read.
    const auto zero = test::run_reap({"report", a, "-o", out, "--keep-ratio", "0"});
    EXPECT_EQ(zero.exit_code, 2) << zero.err;
    EXPECT_NE(zero.err.find("--keep-ratio: '0' is outside (0, 1]"), std::string::npos) << zero.err;
    refuse({"report", a, "-o", dir + "/no/such/dir/r.html"}, "cannot create output");
    // The page never replaces a stats file.
    fs::copy_file(a, dir + "/keep.json");
    const auto before = read_text(dir + "/keep.json");
    refuse({"report", dir + "/keep.json", "-o", dir + "/../" + fs::path(dir).filename().string() + "/keep.json"},
           "is also an input");
    EXPECT_EQ(read_text(dir + "/keep.json"), before);

    // CLI11 rejects an unknown criterion before anything runs.
    const auto bad = test::run_reap({"report", a, "-o", out, "--criterion", "random"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_FALSE(fs::exists(out));
    const auto none = test::run_reap({"report", "-o", out});
    EXPECT_NE(none.exit_code, 0);
}

}  // namespace
