#include "commands.h"
#include "model/open_model.h"
#include "moe/inspect.h"
#include "prune/model_report.h"

#include <cstdio>

namespace reap::cli {

void add_inspect(CLI::App & app, CommandRun & run) {
    struct Opts {
        std::string model;
        bool        json = false;
    };
    auto   opts = std::make_shared<Opts>();
    auto * cmd  = app.add_subcommand("inspect",
                                     "show the MoE structure of a GGUF model or Hugging Face folder and its size after "
                                      "pruning");
    cmd->add_option("model,-m,--model", opts->model,
                    "GGUF file (any split of a split model opens all of it) or Hugging Face model folder")
        ->required();
    cmd->add_flag("--json", opts->json, "print the report as JSON");
    cmd->callback([opts, &run]() {
        run = [opts]() {
            const auto        r   = model_report(*open_model(opts->model));
            const std::string out = opts->json ? r.dump(2) + "\n" : inspect_text(r);
            std::fputs(out.c_str(), stdout);
        };
    });
}

}  // namespace reap::cli
