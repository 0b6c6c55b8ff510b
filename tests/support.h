// Helpers shared by the tests: temporary files, cached synthetic models, running the `reap`
// executable, and decoding with llama.cpp.
#pragma once

// REAP_ASAN: defined in an AddressSanitizer build (GCC and clang spell the test differently).
#if defined(__SANITIZE_ADDRESS__)
#define REAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REAP_ASAN 1
#endif
#endif

#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"
#include "synth/synth.h"

#include <sys/types.h>
#include <functional>
#include <string>
#include <vector>

namespace reap::test {

// A fresh directory for the current test: <build>/tests/tmp/<suite>.<test>/, removed when the
// test ends unless it failed.
std::string tmp_dir();

// Removes `path` (a file or a folder) when the test program ends, whatever its tests' results:
// for files a process shares between its tests and no other process reads.
void remove_when_tests_end(const std::string & path);

// Path of a synthetic model for `o`, generated once per test binary and reused.
std::string synth_model(const synth::Options & o);

struct RunResult {
    int         exit_code;  // -1 when the process died from a signal
    int         signal;     // the signal, or 0
    std::string out;
    std::string err;
};
// Runs the reap executable with `args` (no shell involved).
RunResult run_reap(const std::vector<std::string> & args);

// Runs the program `exe` with `args` (no shell involved) and waits for it.
RunResult run_program(const std::string & exe, const std::vector<std::string> & args);

// What llama.cpp's own llama-perplexity (REAP_LLAMA_PERPLEXITY, when the build found it) said.
struct LlamaPerplexity {
    RunResult run;            // the last attempt
    int       chunks   = -1;  // "calculating perplexity over N chunks"
    double    ppl      = -1;  // "Final estimate: PPL = X": final_ppl() of the log
    int       attempts = 0;
};
// The X of llama-perplexity's "Final estimate: PPL = X" in `log` when it is a finite positive
// number; -1 when the line is missing or X is not ("nan", "inf").
double final_ppl(const std::string & log);
// Runs llama-perplexity with `args`; every test that reads its output goes through here.
// llama.cpp prints its log from a thread that the process does not wait for at exit (common/log.cpp
// leaks the logger on purpose, llama.cpp issue 22142), so on a loaded machine a clean run can lose
// its last lines, the final estimate among them: such a run is repeated (10 attempts at most).
// A run that fails otherwise is returned as it is.
LlamaPerplexity run_llama_perplexity(const std::vector<std::string> & args);

// Starts the reap executable without waiting, stdout to `out_path`, stderr to `err_path`;
// returns its pid (-1 and a test failure if it cannot start).
pid_t spawn_reap(const std::vector<std::string> & args, const std::string & out_path, const std::string & err_path);

// Writes a valid GGUF of a dense llama layer: no expert_count, no expert tensors.
void write_dense_gguf(const std::string & path);

// Loads `model` with llama.cpp, decodes `text` (tokenized with the model's vocabulary) and
// returns the logits of every token, row by row. Fails the test on any llama.cpp error.
// f32_cache: an F32 KV cache, where an F16 one would round float noise up to 1e-3 (comparisons
// of two nearly equal models).
std::vector<std::vector<float>> decode_logits(const std::string & model, const std::string & text, int n_threads = 1,
                                              bool f32_cache = false);

// Writes `src` as `n` split files named like llama.cpp's gguf-split ("<prefix>-0000k-of-0000n.gguf");
// returns the first one's path.
std::string write_splits(const std::string & src, const std::string & prefix, int n);

// Runs a llama.cpp tool through the shell (stdout and stderr together) until `complete` holds
// for its output, `attempts` times at most: llama.cpp's asynchronous logger can drop a run's last
// lines at exit on a loaded machine. Returns the last output.
std::string run_llama_tool(const std::string & command, const std::function<bool(const std::string &)> & complete,
                           int attempts = 8);

std::vector<uint8_t> read_bytes(const std::string & path);
std::string          read_text(const std::string & path);  // the whole file; "" when it cannot be read
// `n` bytes of tensor `t` of `f` from `off`.
std::vector<uint8_t> bytes_of(const GgufFile & f, const TensorInfo & t, uint64_t off, uint64_t n);
// `half` is `in` (analysed as `m`) pruned to `kept` experts: every kept expert's slices are the
// original's bytes (in the order of reap.prune.layer.<il>.kept); every other tensor is untouched.
void expect_kept_slices(const GgufFile & in, const MoeLayout & m, const GgufFile & half, uint32_t kept);
void write_bytes(const std::string & path, const void * data, size_t n);

// The experts a keep ratio drops from a layer of these scores and counts when it has no expert
// groups: the kept-count rule (moe/expert_budget) and the planner's selection (prune/planner).
std::vector<uint32_t> dropped_ungrouped(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                        double keep_ratio);

}  // namespace reap::test
