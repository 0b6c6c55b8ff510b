// reap eval over several held-out texts (--data NAME=FILE ...): a table per domain, the summary
// over them, the JSON/CSV sections, and one base-logits file per domain.
#include "core/error.h"
#include "eval/domains.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

struct DomainModels {
    std::string dir, base, pruned, code;
};

// A synthetic model, its half pruned, and a second held-out text (the start of the code text).
DomainModels make_models() {
    DomainModels s;
    s.dir = test::tmp_dir();
    synth::Options o;
    o.n_layer = 3;
    s.base    = test::synth_model(o);
    s.pruned  = test::profile_and_halve(s.base, s.dir).pruned;
    s.code    = s.dir + "/held-out code.txt";  // a space: not a name, so given as code=FILE
    std::ofstream(s.code)
        << test::read_text(std::string(REAP_SOURCE_DIR) + "/data/text/code-heldout.txt").substr(0, 2000);
    return s;
}

json read_json(const std::string & path) { return json::parse(test::read_bytes(path)); }

TEST(EvalDomains, ResolvesNamesAndBaseLogits) {
    const std::string dir = test::tmp_dir();
    std::ofstream(dir + "/a=b.txt") << "x";  // an existing file is a file, '=' or not
    auto d = resolve_domains({"x/prose.txt", "code=x/c.txt", "ab=" + dir + "/a=b.txt"}, {});
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d[0].name, "prose");
    EXPECT_EQ(d[0].file, "x/prose.txt");
    EXPECT_EQ(d[1].name, "code");
    EXPECT_EQ(d[1].file, "x/c.txt");
    EXPECT_EQ(d[2].name, "ab");
    EXPECT_EQ(d[2].file, dir + "/a=b.txt");
    try {  // the file's own name is no domain name: say how to give one
        resolve_domains({dir + "/a=b.txt"}, {});
        ADD_FAILURE() << "accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("give NAME=" + dir + "/a=b.txt"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(d[0].base_logits.empty());

    d = resolve_domains({"p.txt", "c.txt"}, {dir + "/lgt"});  // one folder for two texts
    EXPECT_FALSE(std::filesystem::exists(dir + "/lgt")) << "options are checked before anything is made";
    create_base_logits_folders(d);  // by the run
    EXPECT_TRUE(std::filesystem::is_directory(dir + "/lgt"));
    EXPECT_EQ(d[0].base_logits, dir + "/lgt/p.lgt");
    EXPECT_EQ(d[1].base_logits, dir + "/lgt/c.lgt");
    d = resolve_domains({"p.txt"}, {dir + "/lgt"});  // an existing folder, even for one text
    EXPECT_EQ(d[0].base_logits, dir + "/lgt/p.lgt");
    d = resolve_domains({"p.txt"}, {dir + "/one.lgt"});  // today's single file
    EXPECT_EQ(d[0].base_logits, dir + "/one.lgt");
    d = resolve_domains({"p.txt", "c.txt"}, {"1.lgt", "2.lgt"});
    EXPECT_EQ(d[1].base_logits, "2.lgt");

    EXPECT_THROW(resolve_domains({"a/p.txt", "b/p.txt"}, {}), Error);               // two named p
    EXPECT_THROW(resolve_domains({"bad name=p.txt"}, {}), Error);                   // not a name
    EXPECT_THROW(resolve_domains({"p.txt", "c.txt", "d.txt"}, {"1", "2"}), Error);  // neither rule
    EXPECT_THROW(resolve_domains({"p.txt", "c.txt"}, {dir + "/a=b.txt"}), Error);   // a file, not a folder
}

TEST(EvalDomains, SummaryIsMeanAndWorst) {
    const DomainSummary s =
        summarize_domains({{"code", 5, 0.2, 0.9, 0.8, 1.5, 10}, {"prose", 9, 0.6, 2.0, 0.6, 2.5, 10}});
    EXPECT_DOUBLE_EQ(s.mean_kl, 0.4);
    EXPECT_DOUBLE_EQ(s.worst_kl, 0.6);
    EXPECT_EQ(s.worst_kl_domain, "prose");
    EXPECT_DOUBLE_EQ(s.mean_ppl_ratio, 2.0);
    EXPECT_DOUBLE_EQ(s.worst_ppl_ratio, 2.5);
    EXPECT_DOUBLE_EQ(s.mean_top1, 0.7);
    EXPECT_DOUBLE_EQ(s.worst_top1, 0.6);
}

TEST(EvalDomains, OneTablePerDomainAndTheSummaryInTextJsonAndCsv) {
    const DomainModels s  = make_models();
    const auto         lg = s.dir + "/logits";
    const auto         r =
        test::run_reap({"eval", "-m", s.base, "--pruned", s.pruned, "--data", k_sample, "--data", "code=" + s.code,
                        "-c", "64", "-t", "1", "--base-logits", lg, "-o", s.dir + "/t.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("== domain sample"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("== domain code"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("summary over 2 domains"), std::string::npos) << r.out;
    EXPECT_TRUE(std::filesystem::exists(lg + "/sample.lgt"));
    EXPECT_TRUE(std::filesystem::exists(lg + "/code.lgt"));

    const json t = read_json(s.dir + "/t.json");
    ASSERT_EQ(t.size(), 2u);
    for (const auto & row : t) {
        ASSERT_TRUE(row.contains("domains")) << row.dump();
        ASSERT_EQ(row["domains"].size(), 2u);
        // the top-level numbers are the first --data's
        EXPECT_EQ(row["ppl"], row["domains"]["sample"]["ppl"]);
        EXPECT_EQ(row["kl_mean"], row["domains"]["sample"]["kl_mean"]);
        EXPECT_EQ(row["top1_agreement"], row["domains"]["sample"]["top1"]);
        const double a = row["domains"]["sample"]["kl_mean"], b = row["domains"]["code"]["kl_mean"];
        EXPECT_EQ(row["worst_kl"].get<double>(), std::max(a, b));
        EXPECT_EQ(row["worst_kl_domain"], std::string(a >= b ? "sample" : "code"));  // ties: the first
        EXPECT_DOUBLE_EQ(row["domains_mean_kl"].get<double>(), (a + b) / 2);
    }
    EXPECT_EQ(t[0]["domains"]["code"]["ppl_ratio"], 1.0);
    EXPECT_EQ(t[0]["worst_kl"], 0.0);
    const double code_ratio =
        t[1]["domains"]["code"]["ppl"].get<double>() / t[0]["domains"]["code"]["ppl"].get<double>();
    EXPECT_DOUBLE_EQ(t[1]["domains"]["code"]["ppl_ratio"].get<double>(), code_ratio);
    EXPECT_GT(t[1]["worst_kl"].get<double>(), 1e-4);

    // Each domain's numbers are those of a run on that text alone.
    const auto alone = test::run_reap({"eval", "-m", s.base, "--pruned", s.pruned, "--data", "code=" + s.code, "-c",
                                       "64", "-t", "1", "-o", s.dir + "/code.json", "--no-progress"});
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    const json c = read_json(s.dir + "/code.json");
    EXPECT_EQ(c[1]["kl_mean"], t[1]["domains"]["code"]["kl_mean"]);
    EXPECT_EQ(c[1]["ppl"], t[1]["domains"]["code"]["ppl"]);
    EXPECT_EQ(c[1]["domains"].size(), 1u);
    EXPECT_EQ(alone.out.find("== domain"), std::string::npos) << "one domain: today's single table";

    // Reuse: no base model; each domain's stored logits give the same numbers, in CSV.
    const auto again =
        test::run_reap({"eval", "--pruned", s.pruned, "--data", k_sample, "--data", "code=" + s.code, "-c", "64", "-t",
                        "1", "--base-logits", lg, "-o", s.dir + "/t.csv", "--no-progress"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const std::string csv    = test::read_text(s.dir + "/t.csv");
    const std::string header = csv.substr(0, csv.find('\n'));
    EXPECT_EQ(header.rfind("model,file_size,ppl,kl_mean", 0), 0u) << header;
    for (const char * col :
         {",worst_kl,", ",worst_kl_domain,", ",sample:kl_mean,", ",code:kl_mean,", ",code:ppl_ratio,"})
        EXPECT_NE(header.find(col), std::string::npos) << col << " in " << header;
    EXPECT_NE(csv.find(strfmt(",%.8f,%s,", t[1]["worst_kl"].get<double>(),
                              t[1]["worst_kl_domain"].get<std::string>().c_str())),
              std::string::npos)
        << csv;
    EXPECT_NE(csv.find(strfmt("%.8f", t[1]["domains"]["code"]["kl_mean"].get<double>())), std::string::npos) << csv;

    // A --base-logits count that fits neither rule (one folder, one per --data) is a usage error.
    const auto bad = test::run_reap({"eval", "--pruned", s.pruned, "--data", k_sample, "--data", "code=" + s.code,
                                     "--data", "x=" + s.code, "-c", "64", "--base-logits", lg + "/sample.lgt",
                                     "--base-logits", lg + "/code.lgt", "--no-progress"});
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_NE(bad.err.find("2 --base-logits for 3 --data"), std::string::npos) << bad.err;
    const auto twice = test::run_reap({"eval", "-m", s.base, "--data", k_sample, "--data", k_sample, "--no-progress"});
    EXPECT_EQ(twice.exit_code, 2) << twice.err;
    EXPECT_NE(twice.err.find("two domains named 'sample'"), std::string::npos) << twice.err;
}

}  // namespace
