// `reap sweep` (issue 23): the choice of the answer as a rule, and the whole sweep on the
// committed trained model: every point evaluated, the answer named on the last line and kept,
// the others removed, --resume reusing what is there, another model's folder refused.
#include "support.h"
#include "sweep/sweep.h"
#include "sweep/sweep_choice.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <filesystem>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

json entry(uint64_t size, double kl, std::optional<double> degeneration = {}, std::optional<double> acc = {}) {
    json e = {{"file_size", size}, {"kl_mean", kl}};
    if (degeneration) e["generation"] = {{"degeneration", *degeneration}};
    if (acc) e["tasks"] = {{"hellaswag", {{"accuracy", *acc}}}};
    return e;
}

TEST(SweepChoice, SmallestWithinEveryTolerance) {
    SweepTolerance t;
    t.max_kl           = 0.5;
    t.max_degeneration = 0.1;
    t.min_task_ratio   = 0.9;
    const json base    = entry(100, 0, 0.0, 0.60);
    // 40: KL too high; 50: degenerates; 60: task below 0.9 of the base; 70: within; 80: within.
    const std::vector<json> m    = {entry(80, 0.1, 0.0, 0.6), entry(40, 0.7, 0.0, 0.6), entry(50, 0.2, 0.5, 0.6),
                                    entry(60, 0.2, 0.0, 0.5), entry(70, 0.3, 0.05, 0.56)};
    const auto              best = choose_model(m, base, t);
    ASSERT_TRUE(best);
    EXPECT_EQ(*best, 4u);
    EXPECT_NE(outside_tolerance(m[1], base, t).find("worst-domain KL"), std::string::npos);
    EXPECT_NE(outside_tolerance(m[2], base, t).find("degeneration"), std::string::npos);
    EXPECT_NE(outside_tolerance(m[3], base, t).find("hellaswag"), std::string::npos);
    // Degeneration counts above the base's own rate.
    const json looping_base = entry(100, 0, 0.2, 0.6);
    EXPECT_EQ(outside_tolerance(entry(50, 0.2, 0.25, 0.6), looping_base, t), "");
    EXPECT_NE(outside_tolerance(entry(50, 0.2, 0.35, 0.6), looping_base, t).find("degeneration"), std::string::npos);
}

TEST(SweepChoice, WorstDomainKlWinsOverTheMeanAndNoneWithinIsNothing) {
    SweepTolerance t;
    t.max_kl      = 0.5;
    json e        = entry(10, 0.1);
    e["worst_kl"] = 0.9;  // fine on the first domain, not on another
    EXPECT_FALSE(choose_model({e}, entry(20, 0), t));
    EXPECT_DOUBLE_EQ(worst_kl_of(e), 0.9);
}

const std::string k_model = REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf";

std::vector<std::string> sweep_args(const std::string & out) {
    return {"sweep",
            "-m",
            k_model,
            "--calib",
            REAP_SOURCE_DIR "/data/calibration/code.jsonl",
            "--max-samples",
            "24",
            "--data",
            "code=" REAP_SOURCE_DIR "/data/text/code-heldout.txt",
            "--chunks",
            "4",
            "-c",
            "128",
            "--ratios",
            "0.25,0.5",
            "--criteria",
            "reap,frequency",
            "--max-kl",
            "0.6",
            "-t",
            "1",
            "--no-progress",
            "-o",
            out};
}

std::string last_line(const std::string & s) {
    std::string t = s;
    while (!t.empty() && t.back() == '\n')
        t.pop_back();
    return t.substr(t.rfind('\n') + 1);
}

TEST(Sweep, TrainedModelEndToEndThenResume) {
    const std::string out = test::tmp_dir() + "/sweep";
    const auto        r   = test::run_reap(sweep_args(out));
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const json rep = json::parse(test::read_text(out + "/sweep.json"));
    ASSERT_EQ(rep["models"].size(), 4u);
    size_t chosen = 0;
    for (const json & m : rep["models"]) {
        EXPECT_TRUE(m.contains("criterion") && m.contains("keep_ratio") && m.contains("kl_mean")) << m.dump();
        EXPECT_GT(m["kl_mean"].get<double>(), 0) << m.dump();
        EXPECT_LT(m["file_size"].get<uint64_t>(), rep["base"]["file_size"].get<uint64_t>());
        if (m["chosen"].get<bool>()) {
            chosen++;
            EXPECT_TRUE(m["within_tolerance"].get<bool>());
            EXPECT_EQ(last_line(r.out), m["path"].get<std::string>());
            EXPECT_TRUE(std::filesystem::exists(m["path"].get<std::string>()));
        } else {
            EXPECT_FALSE(std::filesystem::exists(m["path"].get<std::string>())) << "not the answer, not removed";
        }
    }
    // On this model 25 % by reap stays within KL 0.6 on code (README: 0.33), 50 % does not (0.92).
    ASSERT_EQ(chosen, 1u) << r.out;
    EXPECT_NE(last_line(r.out).find("-25.gguf"), std::string::npos) << r.out;
    const std::string html = test::read_text(out + "/sweep.html");
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_NE(html.find("polyline"), std::string::npos);

    // Without --resume the folder is refused; with it the stats and the answer are reused.
    const auto again = test::run_reap(sweep_args(out));
    EXPECT_EQ(again.exit_code, 1) << again.err;
    EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
    struct stat before {
    }, after{};
    ASSERT_EQ(stat((out + "/stats.json").c_str(), &before), 0);
    ASSERT_EQ(stat(last_line(r.out).c_str(), &before), 0);
    auto args = sweep_args(out);
    args.push_back("--resume");
    const auto resumed = test::run_reap(args);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(last_line(resumed.out), last_line(r.out));
    ASSERT_EQ(stat(last_line(r.out).c_str(), &after), 0);
    EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec) << "the answer was pruned again, not reused";
}

TEST(Sweep, FolderOfAnotherModelIsRefused) {
    const std::string dir   = test::tmp_dir();
    const std::string other = dir + "/other.gguf";
    std::filesystem::copy_file(k_model, other);
    {
        std::ofstream f(other, std::ios::app);
        f << "x";  // another size: another model as far as the sweep's identity goes
    }
    const std::string out = dir + "/sweep";
    std::filesystem::create_directories(out);
    {
        std::ofstream f(out + "/sweep.json");
        f << json({{"identity", {{"model", "other.gguf"}, {"model_size", 1}}}}).dump();
    }
    auto args = sweep_args(out);
    args.push_back("--resume");
    const auto r = test::run_reap(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("another model"), std::string::npos) << r.err;
}

TEST(Sweep, UsageErrors) {
    for (const auto & extra : std::vector<std::vector<std::string>>{
             {"--ratios", "0.25,1.5"}, {"--ratios", "a"}, {"--criteria", "reap,nonsense"}}) {
        auto args = sweep_args(test::tmp_dir() + "/s");
        args.insert(args.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 2) << extra[1] << ": " << r.err;
    }
}

}  // namespace
