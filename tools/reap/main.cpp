// `reap`: prune the least important experts out of a GGUF mixture-of-experts model.
// A thin front end: parses the command line, then calls into libreap (src/).
#include "commands.h"
#include "core/engine_crash_note.h"
#include "core/error.h"
#include "core/log.h"
#include "exit_status.h"
#include "llama/engine_abort_note.h"

#include "llama.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>

namespace reap::cli {

std::vector<std::string> normalize_llama_flags(int argc, char ** argv) {
    static const char * const map[][2] = {{"-ub", "--ubatch-size"},
                                          {"-ngl", "--n-gpu-layers"},
                                          {"-np", "--parallel"},
                                          {"-ctk", "--type-k"},
                                          {"-ctv", "--type-v"},
                                          // Also keeps CLI11 from reading "-ot x" as "-o t x" or
                                          // "-fa on" as "-f a" on commands without these flags.
                                          {"-ot", "--override-tensor"},
                                          {"-fa", "--flash-attn"},
                                          {"-dev", "--device"},
                                          {"-sm", "--split-mode"},
                                          {"-ts", "--tensor-split"},
                                          {"-mg", "--main-gpu"},
                                          {"-tb", "--threads-batch"},
                                          {"-ncmoe", "--n-cpu-moe"},
                                          {"-cmoe", "--cpu-moe"},
                                          {"-nr", "--no-repack"}};
    std::vector<std::string>  out;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        for (const auto & m : map) {
            if (a == m[0]) {
                a = m[1];
            } else if (a.rfind(std::string(m[0]) + "=", 0) == 0) {
                a = std::string(m[1]) + a.substr(std::strlen(m[0]));
            }
        }
        out.push_back(a);
    }
    return out;
}

// A usage error: one line naming the problem and where help is, exit 2 (runtime errors exit 1).
int usage_error(const CLI::App & app, int argc, char ** argv, const std::string & what) {
    std::string sub;
    for (const auto * c : app.get_subcommands([](const CLI::App *) { return true; })) {
        for (int i = 1; i < argc; i++) {
            if (c->get_name() == argv[i]) sub = c->get_name();
        }
    }
    std::string msg = what;
    if (sub.empty()) {
        // No known command: name the word that was taken for one (`reap foo`), or say none was given.
        std::string first;
        for (int i = 1; i < argc && first.empty(); i++) {
            if (argv[i][0] != '-') first = argv[i];
        }
        std::string names;
        for (const auto * c : app.get_subcommands([](const CLI::App *) { return true; })) {
            names += (names.empty() ? "" : ", ") + c->get_name();
        }
        msg = first.empty() ? "no command given (" + names + ")" : "unknown command '" + first + "' (" + names + ")";
    }
    for (auto & ch : msg) {
        if (ch == '\n') ch = ' ';
    }
    std::fprintf(stderr, "reap: error: %s; see 'reap %s--help'\n", msg.c_str(), sub.empty() ? "" : (sub + " ").c_str());
    return 2;
}

std::string chosen_command(const CLI::App & app) {
    const auto chosen = app.get_subcommands();
    return chosen.empty() ? "" : chosen.front()->get_name();
}

}  // namespace reap::cli

using reap::cli::chosen_command;

int main(int argc, char ** argv) {
    CLI::App app{"reap: Router-weighted Expert Activation Pruning for GGUF mixture-of-experts models", "reap"};
    app.set_version_flag("--version", std::string("reap ") + REAP_VERSION);
    app.require_subcommand(1);
    app.option_defaults()->always_capture_default();
    app.get_formatter()->column_width(34);

    bool verbose = false;
    app.add_flag("-v,--verbose", verbose, "show llama.cpp / ggml log messages");
    app.fallthrough();  // -v is accepted after the sub-command too (`reap profile ... -v`)

    // Phase 1 (parse and check) sets `run`; phase 2 runs it (commands.h).
    reap::cli::CommandRun run;
    reap::cli::add_inspect(app, run);
    reap::cli::add_synth(app, run);
    reap::cli::add_profile(app, run);
    reap::cli::add_prune(app, run);
    reap::cli::add_eval(app, run);
    reap::cli::add_report(app, run);
    reap::cli::add_merge(app, run);
    reap::cli::add_sweep(app, run);

    // Sub-commands run from their callbacks, after all options are parsed.
    app.parse_complete_callback([&]() { reap::log_init(verbose ? reap::LogLevel::info : reap::LogLevel::error); });

    // A write past RLIMIT_FSIZE (or a full quota) must fail the write, not kill the process:
    // the output is then removed and the error reported.
    std::signal(SIGXFSZ, SIG_IGN);
    // An engine built for another CPU dies of SIGILL inside llama.cpp: say so before it does.
    reap::install_engine_crash_note();
    // A socket whose peer went away (a dying rpc-server) or a closed stdout must fail the write,
    // not end the process without a word; where llama.cpp then aborts, the note says why.
    std::signal(SIGPIPE, SIG_IGN);
    reap::install_engine_abort_note();

    try {
        std::vector<std::string> args = reap::cli::normalize_llama_flags(argc, argv);
        std::reverse(args.begin(), args.end());  // CLI11 takes the arguments in reverse order
        app.parse(args);
    } catch (const CLI::CallForHelp & e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp & e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion & e) {
        return app.exit(e);
    } catch (const CLI::ParseError & e) {
        return reap::cli::usage_error(app, argc, argv, e.what());
    } catch (const reap::UsageError & e) {
        return reap::cli::usage_error(app, argc, argv, e.what());
    } catch (...) {
        return reap::cli::report_failure(std::current_exception(), chosen_command(app), stderr);
    }
    // Phase 2: everything the work throws is a runtime error (exit 1), an interruption (130) or a
    // bug (70), whatever its type: a usage error comes only from the options' checks above.
    try {
        if (run) run();
    } catch (...) {
        return reap::cli::report_failure(std::current_exception(), chosen_command(app), stderr);
    }
    return 0;
}
