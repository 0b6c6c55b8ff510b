// GGUF reader + MoE layout analysis + inspect + the pruning record, single files and split sets. A hostile file must
// end in reap::Error (one line), never in a crash, an abort inside ggml or an unbounded allocation.
#include "core/error.h"
#include "core/log.h"
#include "fuzz_input.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "gguf/gguf_pruning_record.h"
#include "moe/inspect.h"
#include "prune/model_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    reap::log_init(reap::LogLevel::none);
    // Every input is read as one file, and again as a two-part split set cut in the middle, so
    // seeds are plain GGUF files (any real model file is a valid seed).
    const std::string single = reap::fuzz::write_input("f.gguf", data, size);
    const size_t      cut    = size / 2;
    const std::string split  = reap::fuzz::write_input("f-00001-of-00002.gguf", data, cut);
    reap::fuzz::write_input("f-00002-of-00002.gguf", data + cut, size - cut);
    for (const std::string & path : {single, split}) {
        try {
            (void) reap::inspect_text(reap::model_report(reap::GgufModel(path)));
        } catch (const reap::Error &) {}
        try {
            (void) reap::read_pruning_record(reap::GgufFile::open(path));
        } catch (const reap::Error &) {}
    }
    return 0;
}
