// `reap eval`'s inputs read and checked before any model runs (issue 29): a task that does not fit
// and a malformed prompts line fail in seconds, with no base logits written; a prompt budget
// below the floor is a usage error and cut prompts are noted; prompt errors speak of prompts.
#include "core/error.h"
#include "core/log.h"
#include "eval/eval_inputs.h"
#include "support.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_trained = std::string(REAP_SOURCE_DIR) + "/data/models/tiny-moe-q8_0.gguf";
const std::string k_text    = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

void put_u32(std::string & b, uint32_t v) { b.append(reinterpret_cast<const char *>(&v), 4); }
void put_str(std::string & b, const std::string & s) {
    put_u32(b, uint32_t(s.size()));
    b += s;
}

// One multiple-choice task (llama-perplexity's binary format) whose question is 1500 characters
// of code: some 700 tokens, more than the 4 x 64 the tasks are scored in at -c 64.
std::string write_long_task(const std::string & dir) {
    const std::string code = test::read_text(std::string(REAP_SOURCE_DIR) + "/data/text/code-heldout.txt");
    std::string       task;
    put_str(task, code.substr(0, 1500));
    put_u32(task, 2);
    put_str(task, " a b c");
    put_str(task, " d e f");
    put_u32(task, 1);  // labels: the first answer is right
    put_u32(task, 0);
    put_u32(task, 0);  // mc2: no answers
    std::string file;
    put_u32(file, 1);
    put_u32(file, 8);
    std::ofstream(dir + "/long.bin", std::ios::binary) << file + task;
    return dir + "/long.bin";
}

std::vector<std::string> eval_args(const std::string & dir, std::vector<std::string> extra) {
    std::vector<std::string> a = {
        "eval",     "-m", k_trained, "--pruned", k_trained,       "--data",          k_text,         "-c", "64",
        "--chunks", "1",  "-t",      "1",        "--base-logits", dir + "/base.lgt", "--no-progress"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

TEST(EvalInputs, TaskTooLongFailsBeforeAnyModelRuns) {
    const std::string dir  = test::tmp_dir();
    const std::string task = write_long_task(dir);
    const auto        r    = test::run_reap(eval_args(dir, {"--multiple-choice", task}));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("long.bin: task 1"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("raise -c"), std::string::npos) << r.err;
    // before the fix the base's logits were written and both models evaluated first
    EXPECT_FALSE(std::filesystem::exists(dir + "/base.lgt")) << "a model ran before the inputs were checked";
    // the same check, as the sweep calls it before it profiles
    log_init(LogLevel::error);
    EvalOptions o;
    o.base                  = k_trained;
    o.domains               = {{"sample", k_text, ""}};
    o.n_ctx                 = 64;
    o.tasks.multiple_choice = task;
    EXPECT_THROW(check_eval_inputs(o), Error);
    o.n_ctx = 1024;  // 4 x 1024 holds it
    EXPECT_EQ(check_eval_inputs(o).task_sets.size(), 1u);
}

// The sweep checks the same inputs before it profiles: a task too long for -c failed it after
// every model had been pruned and evaluated (issue 29, item 8).
TEST(EvalInputs, SweepRefusesATaskTooLongBeforeItProfiles) {
    const std::string dir = test::tmp_dir(), out = dir + "/sweep";
    const auto r = test::run_reap({"sweep", "-m", k_trained, "--calib", REAP_SOURCE_DIR "/data/calibration/code.jsonl",
                                   "--data", k_text, "-c", "64", "--ratios", "0.5", "--criteria", "reap",
                                   "--multiple-choice", write_long_task(dir), "--no-progress", "-o", out});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("long.bin: task 1"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out + "/stats.json")) << "profiled before the inputs were checked";
    EXPECT_FALSE(std::filesystem::exists(out + "/reap-50.gguf")) << "pruned before the inputs were checked";
}

TEST(EvalInputs, MalformedPromptsLineFailsBeforeAnyModelRuns) {
    const std::string dir = test::tmp_dir();
    std::ofstream(dir + "/bad.jsonl") << R"({"text": "fine"})"
                                      << "\n{not json\n";
    const auto r = test::run_reap(eval_args(dir, {"--prompts", dir + "/bad.jsonl", "--gen-tokens", "8"}));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("bad.jsonl:2"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/base.lgt")) << "a model ran before the prompts were read";
}

TEST(EvalInputs, PromptBudgetBelowTheFloorIsAUsageErrorAndCutPromptsAreNoted) {
    const std::string dir = test::tmp_dir();
    std::ofstream(dir + "/p.txt") << "short\n" << std::string(300, 'x') << "\n" << std::string(300, 'y') << "\n";
    const std::string prompts = dir + "/p.txt";
    for (const char * n : {"62", "57"}) {  // 2 and 7 tokens left for the prompt
        const auto r = test::run_reap(eval_args(dir, {"--prompts", prompts, "--gen-tokens", n}));
        EXPECT_EQ(r.exit_code, 2) << n << ": " << r.err;
        EXPECT_NE(r.err.find("-c 64"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("--gen-tokens"), std::string::npos) << r.err;
    }
    // without -c the trained context (256) decides, found when the model is read: a runtime error
    auto no_c = eval_args(dir, {"--prompts", prompts, "--gen-tokens", "250"});
    no_c.erase(no_c.begin() + 7, no_c.begin() + 9);
    const auto trained = test::run_reap(no_c);
    EXPECT_EQ(trained.exit_code, 1) << trained.err;
    EXPECT_NE(trained.err.find("-c 256"), std::string::npos) << trained.err;

    // 8 tokens left: accepted, and the two long prompts are said to be cut
    const auto r = test::run_reap(eval_args(dir, {"--prompts", prompts, "--gen-tokens", "56"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("2 of 3 prompts"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("last 8 tokens"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find(std::string(80, 'x')), std::string::npos) << "the table shows text the models never saw";
}

TEST(EvalInputs, PromptsErrorsNameThePromptsFile) {
    const std::string dir = test::tmp_dir();
    std::ofstream(dir + "/empty.jsonl") << "";
    for (const std::string & p : {dir + "/empty.jsonl", dir + "/none.txt"}) {
        const auto r = test::run_reap(eval_args(dir, {"--prompts", p, "--gen-tokens", "8"}));
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find(p + ": "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("prompts"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("calibration"), std::string::npos) << r.err;
    }
    // a prompt needs no response: it is continued from the prompt and its newline
    std::ofstream(dir + "/q.jsonl") << R"({"prompt": "int main() {"})"
                                    << "\n";
    const auto q = test::run_reap(eval_args(dir, {"--prompts", dir + "/q.jsonl", "--gen-tokens", "8"}));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.out.find("prompt 1: int main() {\\n\n"), std::string::npos) << q.out;
    // 'messages' prompts on a model without a template: the sweep takes --chat-template as eval does
    const auto help = test::run_reap({"sweep", "--help"});
    EXPECT_NE(help.out.find("--chat-template"), std::string::npos) << help.out;
}

}  // namespace
