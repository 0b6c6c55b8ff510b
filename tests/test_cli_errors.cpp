// Bad input never crashes: one line on stderr that names the file, and a non-zero exit.
#include "support.h"
#include "support_models.h"

#include "core/engine_crash_note.h"
#include "core/stop_signal.h"
#include "exit_status.h"

#include "ggml.h"
#include "gguf.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

using namespace reap;

namespace {

void expect_one_line_error(const std::vector<std::string> & args, const std::string & must_contain) {
    const auto r = test::run_reap(args);
    EXPECT_EQ(r.signal, 0) << "crashed with signal " << r.signal << "\n" << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "expected one line, got:\n" << r.err;
    EXPECT_EQ(r.err.rfind("reap: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(must_contain), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

std::vector<uint8_t> header(uint64_t n_tensors, uint64_t n_kv) {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    for (uint64_t v : {n_tensors, n_kv}) {
        for (int i = 0; i < 8; i++)
            b.push_back(uint8_t(v >> (8 * i)));
    }
    return b;
}

TEST(CliErrors, InspectBadFiles) {
    const std::string dir = test::tmp_dir();

    expect_one_line_error({"inspect", dir + "/missing.gguf"}, dir + "/missing.gguf: No such file or directory");
    expect_one_line_error({"inspect", dir}, "is a directory");

    const std::string text = dir + "/notes.gguf";
    test::write_bytes(text, "hello, world\n", 13);
    expect_one_line_error({"inspect", text}, text + ": not a valid GGUF file");

    const std::string empty = dir + "/empty.gguf";
    test::write_bytes(empty, "", 0);
    expect_one_line_error({"inspect", empty}, empty + ": not a valid GGUF file");

    synth::Options o;
    o.n_layer           = 2;
    const auto model    = test::synth_model(o);
    const auto bytes    = test::read_bytes(model);
    const auto cut_meta = dir + "/cut-meta.gguf";
    const auto cut_data = dir + "/cut-data.gguf";
    test::write_bytes(cut_meta, bytes.data(), 4000);
    test::write_bytes(cut_data, bytes.data(), bytes.size() - 1000);
    expect_one_line_error({"inspect", cut_meta}, cut_meta + ": not a valid GGUF file");
    expect_one_line_error({"inspect", cut_data}, cut_data + ": truncated: tensor");

    // Hostile headers: absurd counts, a string longer than the file.
    const auto huge = dir + "/huge-count.gguf";
    auto       h    = header(uint64_t(1) << 62, 0);
    test::write_bytes(huge, h.data(), h.size());
    expect_one_line_error({"inspect", huge}, huge + ": not a valid GGUF file");

    const auto longstr = dir + "/long-string.gguf";
    auto       s       = header(0, 1);
    for (int c : {1, 0, 0, 0, 0, 0, 0, 0, int('k'), 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}) {
        s.push_back(uint8_t(c));
    }
    test::write_bytes(longstr, s.data(), s.size());
    expect_one_line_error({"inspect", longstr}, longstr + ": not a valid GGUF file");

    // Random bytes after a valid magic.
    const auto           noise = dir + "/noise.gguf";
    std::vector<uint8_t> n     = {'G', 'G', 'U', 'F'};
    uint32_t             x     = 12345;
    for (int i = 0; i < 4096; i++) {
        x = x * 1664525u + 1013904223u;
        n.push_back(uint8_t(x >> 24));
    }
    test::write_bytes(noise, n.data(), n.size());
    expect_one_line_error({"inspect", noise}, noise + ": not a valid GGUF file");
}

TEST(CliErrors, InspectModelWithoutExperts) {
    // A valid dense llama GGUF: no expert_count and no expert tensors.
    const std::string dir  = test::tmp_dir();
    const std::string path = dir + "/dense.gguf";
    test::write_dense_gguf(path);
    expect_one_line_error({"inspect", path}, path + ": not a mixture-of-experts model");
}

TEST(CliErrors, SynthBadOutputAndOptions) {
    const std::string dir = test::tmp_dir();
    expect_one_line_error({"synth", "-o", dir + "/no/such/dir/m.gguf"},
                          dir + "/no/such/dir/m.gguf: cannot create output");
    // A bad size is a usage error (exit 2): CliErrors.EveryCommandsOptionChecksExitTwo.
    struct stat st;
    EXPECT_NE(::stat((dir + "/m.gguf").c_str(), &st), 0) << "a refused synth must not leave a file";

    const auto r = test::run_reap({"synth", "--arch", "mamba", "-o", dir + "/m.gguf"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.signal, 0);
}

TEST(CliErrors, HelpShowsEveryOptionWithItsDefault) {
    const auto top = test::run_reap({"--help"});
    EXPECT_EQ(top.exit_code, 0);
    EXPECT_NE(top.out.find("inspect"), std::string::npos);
    EXPECT_NE(top.out.find("synth"), std::string::npos);

    const auto s = test::run_reap({"synth", "--help"});
    EXPECT_EQ(s.exit_code, 0);
    for (const char * want : {"--arch", "qwen3moe", "--n-embd", "256", "--type", "Q8_0", "--seed", "42", "--layers"}) {
        EXPECT_NE(s.out.find(want), std::string::npos) << want << " missing from:\n" << s.out;
    }
    const auto none = test::run_reap({});
    EXPECT_NE(none.exit_code, 0);
}

}  // namespace

namespace {

// Usage errors (bad flags, unknown commands) exit 2 with one line and a pointer to --help; runtime
// errors exit 1. Before this, CLI11's own codes (105-114) and multi-line messages leaked out.
TEST(CliErrors, UsageErrorsExitTwoWithOneLine) {
    struct Case {
        std::vector<std::string> args;
        const char *             must_contain;
    };
    const std::vector<Case> cases = {
        {{"foo"}, "unknown command 'foo'"},
        {{}, "no command given"},
        {{"prune", "-m"}, "see 'reap prune --help'"},
        {{"synth", "--n-embd", "abc", "-o", "x.gguf"}, "see 'reap synth --help'"},
        {{"inspect", "a.gguf", "--no-such-flag"}, "see 'reap inspect --help'"},
        // Negative batch sizes used to pass as 0 (the default) without a word.
        {{"eval", "-m", "a.gguf", "--data", "t.txt", "-b", "-3"}, "see 'reap eval --help'"},
        {{"eval", "-m", "a.gguf", "--data", "t.txt", "-ub", "-3"}, "see 'reap eval --help'"},
    };
    for (const auto & c : cases) {
        const auto r = test::run_reap(c.args);
        EXPECT_EQ(r.signal, 0);
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.err.rfind("reap: error: ", 0), 0u) << r.err;
        EXPECT_NE(r.err.find(c.must_contain), std::string::npos) << r.err;
    }
}

// Errors in options that the commands find after parsing (a value or a combination no input
// could make right) are usage errors too: exit 2, one line that says what is wrong (issue 21).
TEST(CliErrors, OptionErrorsFoundByTheCommandsExitTwo) {
    const std::string dir = test::tmp_dir(), model = REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf";
    const std::string text = REAP_SOURCE_DIR "/data/text/sample.txt", stats = dir + "/never-read.json";
    struct Case {
        std::vector<std::string> args;
        std::string              says;
    };
    const std::vector<Case> cases = {
        {{"prune", "-m", model, "--stats", stats, "--keep-ratio", "50%", "--dry-run"},
         "--keep-ratio: '50%' is not a number"},
        {{"prune", "-m", model, "--stats", stats, "--keep", "4", "--prune", "4", "--dry-run"},
         "give exactly one of --keep-ratio, --keep, --prune"},
        {{"prune", "-m", model, "-o", dir + "/u.gguf"}, "give --stats FILE"},
        {{"prune", "-m", model, "--stats", stats, "--keep", "-3", "--dry-run"},
         "--keep: '-3' is not a number of experts"},
        {{"prune", "-m", model, "--stats", stats, "--keep-ratio", "1.0000001", "--dry-run"},
         "--keep-ratio: '1.0000001' is outside (0, 1]"},
        // One list rule (core/text's split_list): an empty item is refused, not dropped.
        {{"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5,", "--dry-run"},
         "--keep-ratio: '' is not a number"},
        {{"prune", "-m", model, "--stats", stats, "--stats", stats, "--stats-weights", "1,nan", "--keep-ratio", "0.5",
          "--dry-run"},
         "--stats-weights: 'nan' is not a positive number"},
        {{"prune", "-m", model, "--stats", stats, "--keep-ratio", "0.5", "--split-max-size", "0", "--dry-run"},
         "--split-max-size: '0' is not a size"},
        {{"eval", "--pruned", model, "-f", text}, "give -m BASE"},
        {{"eval", "-m", model, "-f", text, "-c", "4"}, "-c/--ctx-size must be at least 8"},
        {{"eval", "-m", model, "-f", text, "--chunks", "0"}, "--chunks 0: give a number of windows"},
        {{"profile", "-m", model, "--data", text, "-o", dir + "/s.json", "-c", "4"},
         "-c/--ctx-size must be at least 8"},
        {{"synth", "-o", dir + "/k.gguf", "--hf-out", dir + "/k", "--hf-shard-size", "0"},
         "--hf-shard-size: '0' is not a size"},
    };
    for (const auto & c : cases) {
        const auto r = test::run_reap(c.args);
        EXPECT_EQ(r.exit_code, 2) << c.args[0] << " " << c.args.back() << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.err.rfind("reap: error: ", 0), 0u) << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("see 'reap " + c.args[0] + " --help'"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("e+308"), std::string::npos) << r.err;
    }
}

// The commands `reap --help` lists.
std::set<std::string> listed_commands() {
    const auto            help = test::run_reap({"--help"});
    std::set<std::string> names;
    std::istringstream    in(help.out);
    bool                  in_list = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("SUBCOMMANDS", 0) == 0 || line.rfind("Subcommands:", 0) == 0) {
            in_list = true;
            continue;
        }
        if (in_list && line.size() > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ') {
            names.insert(line.substr(2, line.find(' ', 2) - 2));
        }
    }
    return names;
}

// The exit status follows the phase (tools/reap/commands.h): every command's option checks run
// before any work and exit 2 with a pointer to --help; nothing the work finds exits 2 (issue 29,
// item 11: these exited 1, and a --base-logits folder that could not be created exited 2). The
// walk covers every command `reap --help` lists, so a new command comes with its cases.
TEST(CliErrors, EveryCommandsOptionChecksExitTwo) {
    const std::string dir = test::tmp_dir(), model = REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf";
    const std::string text = REAP_SOURCE_DIR "/data/text/sample.txt", stats = dir + "/never-read.json";
    const std::string calib = REAP_SOURCE_DIR "/data/calibration/sample.jsonl";
    struct Case {
        std::vector<std::string> args;
        std::string              says;
    };
    const std::vector<Case> cases = {
        {{"inspect"}, "model is required"},
        {{"synth", "-o", dir + "/x.gguf", "--n-expert", "1"}, "--n-expert must be in [2, 1024]"},
        {{"synth", "-o", dir + "/x.gguf", "--n-embd", "65"}, "--n-embd must be a multiple of 64"},
        {{"synth", "-o", dir + "/x.gguf", "--super", "100"}, "leave fewer healthy experts"},
        {{"profile", "-m", model, "--data", calib, "-o", dir + "/p.json", "--shard", "4/3"}, "--shard 4/3"},
        {{"profile", "-m", model, "--data", calib, "-o", dir + "/p.json", "-np", "0"}, "-np/--parallel"},
        {{"prune", "-m", model, "--stats", stats, "--keep-ratio", "2", "--dry-run"}, "--keep-ratio: '2'"},
        {{"prune", "-m", model, "--plan", stats, "--keep", "4", "--dry-run"}, "--plan already fixes"},
        {{"eval", "-m", model, "--data", text, "--tasks", "-1"}, "--tasks"},
        {{"eval", "--data", text, "--pruned", model, "--prompts", text}, "give -m BASE"},
        {{"report", stats, "--keep-ratio", "2", "-o", dir + "/r.html"}, "--keep-ratio: '2' is outside (0, 1]"},
        {{"merge", stats, "-o", dir + "/m.json"}, "stats"},
        {{"sweep", "-m", model, "--data", text, "-o", dir + "/sw"}, "--calib FILE) or statistics"},
        {{"sweep", "-m", model, "--stats", stats, "--calib", calib, "--data", text, "-o", dir + "/sw"}, "one of them"},
        {{"sweep", "-m", model, "--stats", stats, "--data", text, "-o", dir + "/sw", "--max-kl", "nan"}, "--max-kl"},
    };
    std::set<std::string> covered;
    for (const auto & c : cases) {
        const auto r = test::run_reap(c.args);
        covered.insert(c.args[0]);
        EXPECT_EQ(r.exit_code, 2) << c.args[0] << " " << c.args.back() << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("see 'reap " + c.args[0] + " --help'"), std::string::npos) << r.err;
        EXPECT_LT(r.err.size(), 240u) << "a readable message: " << r.err;
    }
    const std::set<std::string> commands = listed_commands();
    EXPECT_GE(commands.size(), 8u);
    EXPECT_EQ(covered, commands) << "every command's option checks are walked";
    EXPECT_FALSE(std::filesystem::exists(dir + "/sw")) << "no work before the checks";
}

// What the work finds is a runtime error (exit 1, no "see --help"), whatever the library throws:
// a --base-logits folder that cannot be created, ratios that give one expert count on this model.
TEST(CliErrors, WhatTheWorkFindsExitsOne) {
    const std::string dir = test::tmp_dir(), model = REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf";
    const std::string text = REAP_SOURCE_DIR "/data/text/sample.txt";
    test::write_bytes(dir + "/afile", "x", 1);
    const std::vector<std::vector<std::string>> cases = {
        {"eval", "-m", model, "--data", "a=" + text, "--data", "b=" + text, "-c", "64", "--chunks", "1",
         "--no-progress", "--base-logits", dir + "/afile/sub"},
        {"prune", "-m", model, "--stats", test::profile(model, dir + "/s.json", 4), "--keep-ratio", "0.5,0.5001",
         "--dry-run"},
    };
    for (const auto & args : cases) {
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
        EXPECT_EQ(r.err.find("--help"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.rfind("reap: error: ", 0), 0u) << r.err;
    }
}

// synth checks every option before it writes anything: a bad --hf-* option leaves -o as it was
// (issue 21: it wrote, or replaced, -o and then failed).
TEST(CliErrors, SynthChecksEveryOptionBeforeWriting) {
    const std::string dir = test::tmp_dir();
    std::filesystem::create_directories(dir + "/existing");
    std::ofstream(dir + "/existing/README.md") << "hi\n";
    std::ofstream(dir + "/keep.gguf") << "precious\n";
    struct Case {
        std::vector<std::string> args;
        int                      exit_code;
        std::string              says;
    };
    const std::vector<Case> cases = {
        {{"--arch", "llama", "-o", dir + "/keep.gguf", "--hf-out", dir + "/llf", "--hf-layout", "fused"},
         2,
         "transformers does not save llama with fused experts"},
        {{"-o", dir + "/keep.gguf", "--hf-out", dir + "/existing"}, 1, "already exists"},
        {{"-o", dir + "/keep.gguf", "--hf-out", dir + "/k3", "--hf-shard-size", "0"}, 2, "--hf-shard-size"},
        {{"--arch", "llama4", "-o", dir + "/keep.gguf", "--hf-out", dir + "/l4"}, 2, "no Hugging Face config"},
    };
    for (const auto & c : cases) {
        std::vector<std::string> args = {"synth"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("split-max-size"), std::string::npos) << r.err;
        EXPECT_EQ(test::read_text(dir + "/keep.gguf"), "precious\n");
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/llf"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/k3"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/l4"));
}

// -v works after the sub-command as well as before it.
TEST(CliErrors, VerboseAfterTheCommand) {
    const auto r = test::run_reap({"inspect", "/no/such/file.gguf", "-v"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("/no/such/file.gguf"), std::string::npos) << r.err;
}

}  // namespace

namespace {

// The prototype's Python pruner flags still work: `--input` and `--keep_ratio` are aliases of
// prune's -m and --keep-ratio (a missing model is then a runtime error, exit 1, not a usage one).
TEST(CliErrors, PrototypePruneFlagsAreAliases) {
    const auto r = test::run_reap(
        {"prune", "--input", "/no/such/model.gguf", "--stats", "/no/such/s.json", "--keep_ratio", "0.5", "--dry-run"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("/no/such/model.gguf"), std::string::npos) << r.err;
}

}  // namespace

namespace {

// llama.cpp's multi-letter short flags that reap does not take yet are refused as unknown (exit 2)
// instead of being split by CLI11: "-ot exps=CPU" used to become "-o t" (an output named "t").
TEST(CliErrors, LlamaCppShortFlagsAreNotSplit) {
    // profile and eval take llama.cpp's flags: parsed as such, the run then fails on the model.
    const auto r =
        test::run_reap({"profile", "-m", "/no/such/m.gguf", "--data", "/no/such/c.jsonl", "-ot", "exps=CPU"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("/no/such/m.gguf"), std::string::npos) << r.err;
    const auto f = test::run_reap({"eval", "-m", "/no/such/m.gguf", "--data", "/no/such/t.txt", "-fa", "on"});
    EXPECT_EQ(f.exit_code, 1) << f.err;
    EXPECT_NE(f.err.find("/no/such/"), std::string::npos) << f.err;
    // A command without them refuses them by their long name, instead of reading "-o t".
    const auto m = test::run_reap({"merge", "/no/a.json", "/no/b.json", "-o", "/no/m.json", "-ot", "exps=CPU"});
    EXPECT_EQ(m.exit_code, 2) << m.err;
    EXPECT_NE(m.err.find("--override-tensor"), std::string::npos) << m.err;
}

// -t and -tb default to llama.cpp's environment names, as llama.cpp's own tools do; a value that
// is not a number is a usage error naming the variable.
TEST(CliErrors, ThreadsComeFromLlamaCppsEnvironmentNames) {
    const auto help = test::run_reap({"profile", "--help"});
    EXPECT_NE(help.out.find("LLAMA_ARG_THREADS"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("LLAMA_ARG_THREADS_BATCH"), std::string::npos) << help.out;
    ::setenv("LLAMA_ARG_THREADS", "many", 1);
    const auto r = test::run_reap({"profile", "-m", "/no/such/m.gguf", "--data", "/no/such/c.jsonl"});
    ::setenv("LLAMA_ARG_THREADS", "1", 1);  // the suite's own default (tests/CMakeLists.txt)
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("LLAMA_ARG_THREADS"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("many"), std::string::npos) << r.err;
    // A flag on the command line wins over the environment: no usage error.
    ::setenv("LLAMA_ARG_THREADS", "many", 1);
    const auto f = test::run_reap({"profile", "-m", "/no/such/m.gguf", "--data", "/no/such/c.jsonl", "-t", "1"});
    ::setenv("LLAMA_ARG_THREADS", "1", 1);
    EXPECT_EQ(f.exit_code, 1) << f.err;
}

// The line and the exit status reap ends with when a command throws what `throw_it` throws.
struct Ending {
    int         status;
    std::string line;
};
Ending ending(const std::function<void()> & throw_it, const std::string & command) {
    std::exception_ptr e;
    try {
        throw_it();
    } catch (...) {
        e = std::current_exception();
    }
    EXPECT_TRUE(e) << "nothing was thrown";
    char *      text = nullptr;
    size_t      size = 0;
    std::FILE * err  = open_memstream(&text, &size);
    const int   code = cli::report_failure(e, command, err);
    std::fclose(err);
    Ending out{code, std::string(text, size)};
    std::free(text);
    return out;
}

// A bug (an exception reap does not throw on purpose) is an internal error naming the command,
// with its own exit status; bad input and what the machine refused are errors, exit 1.
TEST(ExitStatus, ABugIsAnInternalErrorNamingTheCommand) {
    const auto map_at = ending([] { (void) std::map<int, int>{}.at(3); }, "prune");
    EXPECT_EQ(map_at.status, cli::k_internal_error_exit_code);
    EXPECT_EQ(map_at.line, "reap: internal error in 'prune': map::at (please report this)\n");
    const auto json_type =
        ending([] { (void) nlohmann::json::parse(R"({"tokens": "12"})").at("tokens").get<int>(); }, "report");
    EXPECT_EQ(json_type.status, cli::k_internal_error_exit_code);
    EXPECT_EQ(json_type.line.rfind("reap: internal error in 'report': [json.exception.type_error.302] ", 0), 0u)
        << json_type.line;
    EXPECT_EQ(std::count(json_type.line.begin(), json_type.line.end(), '\n'), 1) << json_type.line;
    const auto unknown = ending([] { throw 42; }, "");
    EXPECT_EQ(unknown.status, cli::k_internal_error_exit_code);
    EXPECT_EQ(unknown.line, "reap: internal error: an exception of unknown type (please report this)\n");
    EXPECT_NE(cli::k_internal_error_exit_code, 1);
    EXPECT_NE(cli::k_internal_error_exit_code, 2);
}

TEST(ExitStatus, BadInputAndARefusingMachineAreErrors) {
    const auto user = ending([] { fail("%s: not a valid GGUF file", "m.gguf"); }, "inspect");
    EXPECT_EQ(user.status, 1);
    EXPECT_EQ(user.line, "reap: error: m.gguf: not a valid GGUF file\n");
    const std::string file = test::tmp_dir() + "/file";
    test::write_bytes(file, "x", 1);
    const auto fs_error = ending([&] { std::filesystem::create_directories(file + "/sub"); }, "sweep");
    EXPECT_EQ(fs_error.status, 1);
    EXPECT_EQ(fs_error.line.rfind("reap: error: filesystem error: ", 0), 0u) << fs_error.line;
    EXPECT_NE(fs_error.line.find(file), std::string::npos) << fs_error.line;
    const auto memory = ending([] { throw std::bad_alloc(); }, "eval");
    EXPECT_EQ(memory.status, 1);
    EXPECT_EQ(memory.line, "reap: error: out of memory\n");
    const auto stop = ending([] { throw Interrupted("interrupted by SIGINT while pruning"); }, "prune");
    EXPECT_EQ(stop.status, 130);
    EXPECT_EQ(stop.line, "reap: interrupted by SIGINT while pruning\n");
}

}  // namespace

// An engine built for another CPU dies of SIGILL inside llama.cpp: reap says so first, and the
// process still ends by that signal (issue 20).
TEST(EngineCrashNote, SigillPrintsOneLineThenDiesOfSigill) {
    EXPECT_EXIT(
        {
            install_engine_crash_note();
            raise(SIGILL);
        },
        testing::KilledBySignal(SIGILL), "instruction this CPU or VM does not allow .*scripts/setup.sh");
}

TEST(EngineCrashNote, TheReapExecutableInstallsIt) {
    // reap blocks reading calibration data from a FIFO; once it has opened it (long after start-up),
    // it gets the SIGILL an illegal instruction would raise.
    const std::string dir  = test::tmp_dir();
    const std::string fifo = dir + "/calib.txt";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const pid_t pid = test::spawn_reap({"profile", "-m", REAP_SOURCE_DIR "/data/models/tiny-moe-q8_0.gguf", "--data",
                                        fifo, "-o", dir + "/s.json", "-t", "1"},
                                       dir + "/out", dir + "/err");
    ASSERT_GT(pid, 0);
    int writer = -1;
    for (int i = 0; i < 600 && writer < 0; i++) {  // O_NONBLOCK: ENXIO until reap opens it for reading
        writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        if (writer < 0) usleep(50 * 1000);
    }
    ASSERT_GE(writer, 0) << "reap never opened " << fifo << ": " << test::read_text(dir + "/err");
    ASSERT_EQ(kill(pid, SIGILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(writer);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGILL);
    const std::string err = test::read_text(dir + "/err");
    EXPECT_NE(err.find(engine_crash_note()), std::string::npos) << err;
}
