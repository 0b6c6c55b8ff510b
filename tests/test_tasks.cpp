// Task files in llama-perplexity's formats (eval/task_files.h) and their scores
// (eval/task_scoring.h): malformed files are refused naming the file and line, a file of another
// format says which, and on the committed trained model and a pruned copy the accuracy `reap eval`
// reports is llama-perplexity's own, on a task file of each format (a subset, and a whole file).
#include "core/error.h"
#include "eval/task_files.h"
#include "support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_root  = REAP_SOURCE_DIR;
const std::string k_model = k_root + "/data/models/tiny-moe-q8_0.gguf";
const std::string k_hs    = k_root + "/data/tasks/prose-hellaswag.txt";
const std::string k_wg    = k_root + "/data/tasks/prose-winogrande.csv";
const std::string k_mc    = k_root + "/data/tasks/code-continuation.bin";

std::string write(const std::string & name, const std::string & text) {
    const std::string path = test::tmp_dir() + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

// The message read_task_file fails with ("" when it does not).
std::string read_error(TaskFormat f, const std::string & path, size_t limit = 0) {
    try {
        read_task_file(f, path, limit);
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

const std::string k_wg_line = "1,\"The cup did not fit in the box because _ was too big.\",the cup,the box,1\n";

}  // namespace

TEST(TaskFiles, MalformedFilesNameTheFileAndLine) {
    const std::string hs = write("bad.txt", "ctx\n0\na\nb\nc\nd\nctx2\nnine\na\nb\nc\nd\n");
    EXPECT_NE(read_error(TaskFormat::hellaswag, hs).find(hs + ":8: the right ending's index must be 0..3"),
              std::string::npos)
        << read_error(TaskFormat::hellaswag, hs);
    const std::string short_hs = write("short.txt", "ctx\n0\na\nb\nc\nd\nctx2\n1\na\n");
    EXPECT_NE(read_error(TaskFormat::hellaswag, short_hs).find(short_hs + ":7: incomplete task"), std::string::npos);

    const std::string wg = write("bad.csv", "index,sentence,option1,option2,answer\n" + k_wg_line +
                                                "2,No blank here.,a,b,1\n" + k_wg_line + "\n");
    EXPECT_NE(read_error(TaskFormat::winogrande, wg).find(wg + ":3: the sentence has no _"), std::string::npos)
        << read_error(TaskFormat::winogrande, wg);
    const std::string wg3 = write("bad3.csv", k_wg_line + "3,\"a _ b\",x,y,3\n" + k_wg_line + "\n");
    EXPECT_NE(read_error(TaskFormat::winogrande, wg3).find(wg3 + ":2: the answer (last field) must be 1 or 2"),
              std::string::npos);

    // the binary format: cut inside the third task
    const auto mc  = test::read_bytes(k_mc);
    uint32_t   off = 0;
    std::memcpy(&off, mc.data() + 12, 4);  // the third task's offset
    const std::string cut = write("cut.bin", std::string(mc.begin(), mc.begin() + off + 10));
    EXPECT_NE(read_error(TaskFormat::multiple_choice, cut)
                  .find(cut + ": task 3 (byte " + std::to_string(off) + "): truncated"),
              std::string::npos)
        << read_error(TaskFormat::multiple_choice, cut);
    EXPECT_NE(read_error(TaskFormat::multiple_choice, cut, 1).find(": task "), std::string::npos);  // by offset
    const std::string huge = write("huge.bin", std::string("\xf0\xff\xff\xff\x08\0\0\0", 8));
    EXPECT_NE(
        read_error(TaskFormat::multiple_choice, huge).find(huge + ": 4294967280 tasks, but the file is too short"),
        std::string::npos)
        << read_error(TaskFormat::multiple_choice, huge);
}

TEST(TaskFiles, AFileOfAnotherFormatSaysWhichItLooksLike) {
    EXPECT_NE(read_error(TaskFormat::hellaswag, k_wg).find("looks like a winogrande file: give it with --winogrande"),
              std::string::npos)
        << read_error(TaskFormat::hellaswag, k_wg);
    EXPECT_NE(read_error(TaskFormat::winogrande, k_mc)
                  .find("looks like a multiple_choice file: give it with "
                        "--multiple-choice"),
              std::string::npos);
    EXPECT_NE(
        read_error(TaskFormat::multiple_choice, k_hs).find("looks like a hellaswag file: give it with --hellaswag"),
        std::string::npos);
    // through the command line: exit 1 before any model is loaded
    const auto r = test::run_reap(
        {"eval", "-m", k_model, "--data", k_root + "/data/text/sample.txt", "--hellaswag", k_mc, "--no-progress"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("given as --hellaswag, but it looks like a multiple_choice file"), std::string::npos) << r.err;
}

TEST(TaskFiles, ReadAsLlamaPerplexityReadsThem) {
    // winogrande: a header line is skipped, and the last line is never read (as llama-perplexity)
    const std::string wg  = write("t.csv", "index,sentence,option1,option2,answer\n" + k_wg_line + k_wg_line);
    const TaskSet     set = read_task_file(TaskFormat::winogrande, wg, 0);
    ASSERT_EQ(set.winogrande.size(), 1u);
    EXPECT_EQ(set.winogrande[0].first, "The cup did not fit in the box because ");
    EXPECT_EQ(set.winogrande[0].second, " was too big.");
    EXPECT_EQ(set.winogrande[0].choices[1], "the box");
    const std::string wg_empty_end = write("e.csv", k_wg_line + k_wg_line + "\n");
    EXPECT_EQ(read_task_file(TaskFormat::winogrande, wg_empty_end, 0).winogrande.size(), 2u);

    // a subset is a subset, the same every time, and the limit is the count
    const TaskSet a = read_task_file(TaskFormat::hellaswag, k_hs, 10),
                  b = read_task_file(TaskFormat::hellaswag, k_hs, 10);
    ASSERT_EQ(a.choice.size(), 10u);
    for (size_t i = 0; i < 10; i++)
        EXPECT_EQ(a.choice[i].where, b.choice[i].where);
    EXPECT_NE(a.choice[0].where, k_hs + ":1");  // drawn at random, not the first ones
    EXPECT_EQ(read_task_file(TaskFormat::multiple_choice, k_mc, 7).choice.size(), 7u);
    const TaskSet all = read_task_file(TaskFormat::multiple_choice, k_mc, 0);
    EXPECT_EQ(all.choice.size(), 150u);
    EXPECT_EQ(all.choice[0].endings.size(), 4u);
}

#ifdef REAP_LLAMA_PERPLEXITY
namespace {

struct Theirs {
    uint64_t n          = 0;
    uint64_t correct    = 0;
    double   stderr_pct = -1;  // the final line's, when printed
};

// llama-perplexity's running accuracy lines ("N<tab>ACC..."; the last has every task) and its
// final line's standard error where it prints one.
Theirs parse(const std::string & log, const std::string & final_marker) {
    Theirs            t;
    static std::regex line(R"((^|\n)(\d+)\t([0-9.]+))");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
        const uint64_t n = std::stoull((*it)[2]);
        if (n > t.n) {
            t.n       = n;
            t.correct = uint64_t(std::llround(std::stod((*it)[3]) * double(n) / 100));
        }
    }
    const size_t at = log.find(final_marker);
    if (at != std::string::npos) {
        const size_t pm = log.find("+/-", at);
        if (pm != std::string::npos) t.stderr_pct = std::stod(log.substr(pm + 3));
    }
    return t;
}

void expect_equal_to_llama_perplexity(const std::string & model, const json & ours, size_t limit) {
    struct Case {
        const char * key;
        std::string  args;
        const char * final_marker;
    };
    const std::string lim     = std::to_string(limit);
    const Case        cases[] = {
               {"hellaswag", "-f " + k_hs + " --hellaswag --hellaswag-tasks " + (limit ? lim : "100000"), ""},
               {"winogrande", "-f " + k_wg + " --winogrande --winogrande-tasks " + lim, "Final Winogrande score"},
               {"multiple_choice", "-bf " + k_mc + " --multiple-choice --multiple-choice-tasks " + lim, "Final result"},
    };
    for (const Case & c : cases) {
        if (!ours.contains(c.key)) continue;
        SCOPED_TRACE(std::string(c.key) + " on " + model + ", --tasks " + lim);
        const uint64_t n = ours[c.key]["n"];
        // its final line: winogrande's from 100 tasks, multiple-choice's also for a whole file
        const std::string key = c.key;
        const bool final = (key == "winogrande" && n >= 100) || (key == "multiple_choice" && (n >= 100 || limit == 0));
        const std::string cmd = std::string(REAP_LLAMA_PERPLEXITY) + " -m " + model + " " + c.args + " -t 1";
        const std::string log = test::run_llama_tool(cmd, [&](const std::string & out) {
            const Theirs t = parse(out, c.final_marker);
            return t.n == n && (!final || t.stderr_pct >= 0);
        });
        const Theirs      t   = parse(log, c.final_marker);
        ASSERT_EQ(t.n, n) << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
        EXPECT_EQ(uint64_t(std::llround(double(ours[c.key]["accuracy"]) * double(n))), t.correct);
        if (final) {
            EXPECT_NEAR(100 * double(ours[c.key]["stderr"]), t.stderr_pct, 2e-4);
        }
    }
}

}  // namespace

TEST(TaskEval, AccuracyEqualsLlamaPerplexitysOwn) {
    const std::string dir = test::tmp_dir();
    const auto prof = test::run_reap({"profile", "-m", k_model, "--data", k_root + "/data/calibration/code.jsonl", "-o",
                                      dir + "/stats.json", "-t", "1", "--no-progress"});
    ASSERT_EQ(prof.exit_code, 0) << prof.err;
    const std::string half  = dir + "/half.gguf";
    const auto        prune = test::run_reap(
               {"prune", "-m", k_model, "--stats", dir + "/stats.json", "--keep-ratio", "0.5", "-o", half, "--no-progress"});
    ASSERT_EQ(prune.exit_code, 0) << prune.err;
    // every task of the multiple-choice file (read in order; llama-perplexity prints its final
    // line with the standard error), then a subset of 30 of each file (drawn, read at offsets)
    const std::vector<std::pair<size_t, std::vector<std::string>>> runs = {
        {0, {"--multiple-choice", k_mc}},
        {30, {"--hellaswag", k_hs, "--winogrande", k_wg, "--multiple-choice", k_mc}},
    };
    for (const auto & [limit, files] : runs) {
        const std::string        out  = dir + "/eval" + std::to_string(limit) + ".json";
        std::vector<std::string> args = {"eval",
                                         "-m",
                                         k_model,
                                         "--pruned",
                                         half,
                                         "--data",
                                         k_root + "/data/text/sample.txt",
                                         "--tasks",
                                         std::to_string(limit),
                                         "-t",
                                         "1",
                                         "-o",
                                         out,
                                         "--no-progress"};
        args.insert(args.end(), files.begin(), files.end());
        const auto r = test::run_reap(args);
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find("task accuracy"), std::string::npos) << r.out;
        const json rows = json::parse(test::read_text(out));
        ASSERT_EQ(rows.size(), 2u);
        EXPECT_EQ(rows[0]["tasks"]["multiple_choice"]["n"], limit ? limit : 150);
        expect_equal_to_llama_perplexity(k_model, rows[0]["tasks"], limit);
        expect_equal_to_llama_perplexity(half, rows[1]["tasks"], limit);
    }
}
#endif
