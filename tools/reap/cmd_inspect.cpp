#include "commands.h"
#include "hf/hf_inspect.h"
#include "moe/inspect.h"

#include <cstdio>

namespace reap::cli {

void add_inspect(CLI::App & app) {
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
    cmd->callback([opts]() {
        if (is_hf_folder(opts->model)) {
            const HfCheckpoint c = HfCheckpoint::open(opts->model);
            const auto         r = hf_inspect_report(c, analyze_hf(c));
            std::fputs((opts->json ? r.dump(2) + "\n" : inspect_text(r)).c_str(), stdout);
            return;
        }
        const GgufFile    f   = GgufFile::open(opts->model);
        const MoeLayout   m   = analyze_moe(f);
        const auto        r   = inspect_report(f, m);
        const std::string out = opts->json ? r.dump(2) + "\n" : inspect_text(r);
        std::fputs(out.c_str(), stdout);
    });
}

}  // namespace reap::cli
