// Calibration readers: JSONL (prompt/response, text, messages) and plain text, lax and strict.
#include "core/error.h"
#include "fuzz_input.h"
#include "profile/calibration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    // The same bytes as JSONL and as plain text (the format follows the extension).
    for (const char * name : {"calib.jsonl", "calib.txt"}) {
        const std::string path = reap::fuzz::write_input(name, data, size);
        for (bool strict : {false, true}) {
            try {
                std::vector<reap::CalibFileReport> report;
                (void) reap::load_calibration({path}, reap::CalibFormat::automatic, strict, report);
            } catch (const reap::Error &) {}
        }
    }
    return 0;
}
