// The importance-matrix reader (gguf/imatrix_file.h): a hostile file must end in reap::Error
// (one line), never in a crash, an abort inside ggml or an unbounded allocation. What it reads is
// then summed and written back, as reap merge and reap prune --imatrix do.
#include "core/error.h"
#include "core/log.h"
#include "fuzz_input.h"
#include "gguf/imatrix_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    reap::log_init(reap::LogLevel::none);
    const std::string path = reap::fuzz::write_input("m.imatrix.gguf", data, size);
    try {
        reap::Imatrix m = reap::read_imatrix(path);
        reap::add_imatrix(m, m, path);
        (void) reap::imatrix_hash(m);
        reap::write_imatrix(reap::fuzz::scratch_dir() + "/out.gguf", m);
    } catch (const reap::Error &) {}
    return 0;
}
