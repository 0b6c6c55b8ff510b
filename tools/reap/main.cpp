// `reap`: prune the least important experts out of a GGUF mixture-of-experts model.
// A thin front end: parses the command line, then calls into libreap (src/).
#include "commands.h"
#include "error.h"
#include "log.h"

#include "llama.h"

#include <cstdio>
#include <exception>

int main(int argc, char ** argv) {
    CLI::App app{"reap: Router-weighted Expert Activation Pruning for GGUF mixture-of-experts models"};
    app.set_version_flag("--version", std::string("reap ") + REAP_VERSION);
    app.require_subcommand(1);
    app.option_defaults()->always_capture_default();
    app.get_formatter()->column_width(34);

    bool verbose = false;
    app.add_flag("-v,--verbose", verbose, "show llama.cpp / ggml log messages");

    reap::cli::add_inspect(app);
    reap::cli::add_synth(app);

    // Sub-commands run from their callbacks, after all options are parsed.
    app.parse_complete_callback([&]() { reap::log_init(verbose ? reap::LogLevel::info : reap::LogLevel::error); });

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    } catch (const reap::Error & e) {
        std::fprintf(stderr, "reap: error: %s\n", e.what());
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "reap: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
