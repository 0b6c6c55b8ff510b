#include "support.h"

#include "moe/expert_budget.h"
#include "prune/planner.h"

#include "core/log.h"
#include "llama/llama_util.h"

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

extern char ** environ;

namespace reap::test {

namespace fs = std::filesystem;

// Test outputs are models of tens of MB each; kept, they filled CI's disk (8 GB for the suite).
// A test's folder is removed when it ends unless it failed (a failing one stays, to be looked
// at), and the models synth_model() wrote for this process when the program ends (they carry
// its pid, so no other test process can be reading them).
class TmpCleaner : public ::testing::EmptyTestEventListener {
public:
    static TmpCleaner & installed() {
        static TmpCleaner * self = [] {
            auto * c = new TmpCleaner;
            ::testing::UnitTest::GetInstance()->listeners().Append(c);  // gtest owns it from here
            return c;
        }();
        return *self;
    }

    void add_dir(const fs::path & dir) { dirs_.push_back(dir); }

    void add_leftover(const fs::path & path) { leftovers_.push_back(path); }

    void OnTestEnd(const ::testing::TestInfo & info) override {
        if (info.result()->Failed()) dirs_.clear();
        remove(dirs_);
    }

    void OnTestProgramEnd(const ::testing::UnitTest &) override { remove(leftovers_); }

private:
    static void remove(std::vector<fs::path> & paths) {
        for (const auto & p : paths) {
            std::error_code ec;  // already gone, or never made: nothing to do
            fs::remove_all(p, ec);
        }
        paths.clear();
    }

    std::vector<fs::path> dirs_, leftovers_;
};

void remove_when_tests_end(const std::string & path) { TmpCleaner::installed().add_leftover(path); }

std::string tmp_dir() {
    const auto * info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string  name = info ? std::string(info->test_suite_name()) + "." + info->name() : "global";
    for (auto & c : name) {
        if (c == '/') c = '_';
    }
    const fs::path dir = fs::path(REAP_TEST_TMP) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    if (info) {
        TmpCleaner::installed().add_dir(dir);
    }
    return dir.string();
}

std::string synth_model(const synth::Options & o) {
    static std::mutex                         mu;
    static std::map<std::string, std::string> cache;
    const std::string                         key =
        o.arch + "-L" + std::to_string(o.n_layer) + "-E" + std::to_string(o.n_embd) + "-F" + std::to_string(o.n_ff) +
        "-X" + std::to_string(o.n_expert) + "-K" + std::to_string(o.n_expert_used) + "-" + ggml_type_name(o.type) +
        "-s" + std::to_string(o.seed) + "-p" + std::to_string(o.n_dead) + "." + std::to_string(o.n_rare) + "." +
        std::to_string(o.n_weak) + "." + std::to_string(o.n_super) + (o.llama_builder ? "-builder" : "") + "-h" +
        std::to_string(o.n_head) + "." + std::to_string(o.n_head_kv) + "." + std::to_string(o.head_dim) + "-g" +
        std::to_string(o.n_group) + "." + std::to_string(o.n_group_used) + "-t" + std::to_string(o.n_ctx_train) +
        (o.vocab.empty() ? "" : "-v" + std::to_string(std::hash<std::string>{}(o.vocab))) + "-pid" +
        std::to_string(::getpid());
    std::lock_guard<std::mutex> lock(mu);
    auto                        it = cache.find(key);
    if (it != cache.end()) {
        return it->second;
    }
    const fs::path dir = fs::path(REAP_TEST_TMP) / "models";
    fs::create_directories(dir);
    const std::string path = (dir / (key + ".gguf")).string();
    synth::write_model(o, path);
    remove_when_tests_end(path);
    cache[key] = path;
    return path;
}

namespace {

pid_t spawn_program(const std::string & exe, const std::vector<std::string> & args, const std::string & out_path,
                    const std::string & err_path) {
    std::vector<std::string> argv_s = {exe};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto & a : argv_s)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t     pid = -1;
    const int rc  = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        ADD_FAILURE() << "cannot start " << exe << ": " << std::strerror(rc);
        return -1;
    }
    return pid;
}

}  // namespace

pid_t spawn_reap(const std::vector<std::string> & args, const std::string & out_path, const std::string & err_path) {
    return spawn_program(REAP_BIN, args, out_path, err_path);
}

RunResult run_reap(const std::vector<std::string> & args) { return run_program(REAP_BIN, args); }

double final_ppl(const std::string & log) {
    const std::string final_line = "Final estimate: PPL = ";
    const size_t      at         = log.find(final_line);
    if (at == std::string::npos) return -1;
    // strtod reads "nan" and "inf" too: a model whose logits went bad must fail the cross-check.
    const char * begin = log.c_str() + at + final_line.size();
    char *       end   = nullptr;
    const double ppl   = std::strtod(begin, &end);
    return end != begin && std::isfinite(ppl) && ppl > 0 ? ppl : -1;
}

LlamaPerplexity run_llama_perplexity(const std::vector<std::string> & args) {
    LlamaPerplexity r;
#ifndef REAP_LLAMA_PERPLEXITY
    ADD_FAILURE() << "llama-perplexity was not found at configure time";
    return r;
#else
    const std::string final_line = "Final estimate: PPL = ";
    for (r.attempts = 1; r.attempts <= 10; r.attempts++) {
        r.run          = run_program(REAP_LLAMA_PERPLEXITY, args);
        const auto log = r.run.out + r.run.err;
        if (r.run.exit_code != 0 || log.find(final_line) != std::string::npos) break;
    }
    const std::string log    = r.run.out + r.run.err;
    r.ppl                    = final_ppl(log);
    const std::string chunks = "calculating perplexity over ";
    if (const size_t at = log.find(chunks); at != std::string::npos) {
        r.chunks = int(std::strtol(log.c_str() + at + chunks.size(), nullptr, 10));
    }
    return r;
#endif
}

RunResult run_program(const std::string & exe, const std::vector<std::string> & args) {
    const std::string dir = fs::path(REAP_TEST_TMP) / "run";
    fs::create_directories(dir);
    const std::string tag      = std::to_string(::getpid()) + "." + std::to_string(::rand());
    const std::string out_path = dir + "/out." + tag, err_path = dir + "/err." + tag;

    RunResult   r{-1, 0, "", ""};
    const pid_t pid = spawn_program(exe, args, out_path, err_path);
    if (pid < 0) {
        return r;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
        r.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r.signal = WTERMSIG(status);
    }
    const auto b1 = read_bytes(out_path), b2 = read_bytes(err_path);
    r.out.assign(b1.begin(), b1.end());
    r.err.assign(b2.begin(), b2.end());
    fs::remove(out_path);
    fs::remove(err_path);
    return r;
}

std::vector<std::vector<float>> decode_logits(const std::string & path, const std::string & text, int n_threads,
                                              bool f32_cache) {
    static std::once_flag once;
    std::call_once(once, [] {
        log_init(LogLevel::error);
        llama_backend_init();
    });
    std::vector<std::vector<float>> rows;
    llama_model_params              mp = llama_model_default_params();
    mp.n_gpu_layers                    = 0;
    llama_model * model                = llama_model_load_from_file(path.c_str(), mp);
    if (model == nullptr) {
        ADD_FAILURE() << "llama.cpp could not load " << path;
        return rows;
    }
    const llama_vocab *      vocab = llama_model_get_vocab(model);
    std::vector<llama_token> tokens(text.size() + 8);
    const int                n =
        llama_tokenize(vocab, text.c_str(), int32_t(text.size()), tokens.data(), int32_t(tokens.size()), true, false);
    EXPECT_GT(n, 1) << "tokenization failed";
    tokens.resize(size_t(std::max(n, 0)));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx                = 512;
    cp.n_batch              = 512;
    cp.n_ubatch             = 512;
    cp.n_threads            = n_threads;
    cp.n_threads_batch      = n_threads;
    if (f32_cache) {
        cp.type_k = cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type    = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // its CPU kernel rounds Q to F16
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (ctx == nullptr) {
        ADD_FAILURE() << "llama.cpp could not create a context for " << path;
        llama_model_free(model);
        return rows;
    }
    reap::LlamaBatch batch(int32_t(tokens.size()));
    reap::batch_add_outputs(batch.b, tokens, 0, tokens.size(), 0);
    const int rc = llama_decode(ctx, batch.b);
    EXPECT_EQ(rc, 0) << "llama_decode failed";
    if (rc == 0) {
        const int n_vocab = llama_vocab_n_tokens(vocab);
        for (size_t i = 0; i < tokens.size(); i++) {
            const float * l = llama_get_logits_ith(ctx, int32_t(i));
            rows.emplace_back(l, l + n_vocab);
        }
    }
    llama_free(ctx);
    llama_model_free(model);
    return rows;
}

std::string write_splits(const std::string & src, const std::string & prefix, int n) {
    ggml_context * data = nullptr;
    gguf_context * in   = gguf_init_from_file(src.c_str(), {false, &data});
    EXPECT_NE(in, nullptr);
    const int64_t nt = gguf_get_n_tensors(in);
    std::string   first;
    for (int s = 0; s < n; s++) {
        gguf_context * out = gguf_init_empty();
        if (s == 0) {
            gguf_set_kv(out, in);
        }
        gguf_set_val_u16(out, "split.no", uint16_t(s));
        gguf_set_val_u16(out, "split.count", uint16_t(n));
        gguf_set_val_i32(out, "split.tensors.count", int32_t(nt));
        for (int64_t i = s * nt / n; i < (s + 1) * nt / n; i++) {
            gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(in, i)));
        }
        char path[1024];
        llama_split_path(path, sizeof(path), prefix.c_str(), s, n);
        EXPECT_TRUE(gguf_write_to_file(out, path, false));
        if (s == 0) first = path;
        gguf_free(out);
    }
    gguf_free(in);
    ggml_free(data);
    return first;
}

void write_dense_gguf(const std::string & path) {
    gguf_context * ctx = gguf_init_empty();
    gguf_set_val_str(ctx, "general.architecture", "llama");
    gguf_set_val_u32(ctx, "llama.block_count", 1);
    ggml_init_params ip{ggml_tensor_overhead() * 4 + 4096, nullptr, false};
    ggml_context *   g = ggml_init(ip);
    ggml_tensor *    t = ggml_new_tensor_2d(g, GGML_TYPE_F32, 16, 8);
    std::memset(t->data, 0, ggml_nbytes(t));
    ggml_set_name(t, "blk.0.ffn_up.weight");
    gguf_add_tensor(ctx, t);
    EXPECT_TRUE(gguf_write_to_file(ctx, path.c_str(), false)) << path;
    gguf_free(ctx);
    ggml_free(g);
}

std::string run_llama_tool(const std::string & command, const std::function<bool(const std::string &)> & complete,
                           int attempts) {
    std::string log;
    for (int attempt = 0; attempt < attempts && (attempt == 0 || !complete(log)); attempt++) {
        log.clear();
        if (FILE * p = ::popen((command + " 2>&1").c_str(), "r")) {
            char buf[4096];
            for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;)
                log.append(buf, n);
            ::pclose(p);
        }
    }
    return log;
}

std::string read_text(const std::string & path) {
    const std::vector<uint8_t> b = read_bytes(path);
    return std::string(b.begin(), b.end());
}

std::vector<uint8_t> read_bytes(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string & path, const void * data, size_t n) {
    std::ofstream out(path, std::ios::binary);
    out.write((const char *) data, std::streamsize(n));
}

std::vector<uint8_t> bytes_of(const GgufFile & f, const TensorInfo & t, uint64_t off, uint64_t n) {
    std::vector<uint8_t> b(n);
    f.read(t, off, b.data(), n);
    return b;
}

std::vector<uint32_t> dropped_ungrouped(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                        double keep_ratio) {
    MoeShape ungrouped;
    ungrouped.n_expert = uint32_t(score.size());
    return dropped_experts(score, count, ungrouped, round_kept_count(ungrouped, keep_ratio));
}

void expect_kept_slices(const GgufFile & in, const MoeLayout & m, const GgufFile & half, uint32_t kept) {
    std::map<const TensorInfo *, const ExpertTensor *> expert_of;
    for (const auto & e : m.expert_tensors)
        expert_of[e.info] = &e;
    for (const auto & t : in.tensors()) {
        const auto * u = half.find_tensor(t.name);
        ASSERT_NE(u, nullptr) << t.name;
        auto it = expert_of.find(&t);
        if (it == expert_of.end()) {
            EXPECT_TRUE(bytes_of(in, t, 0, t.nbytes) == bytes_of(half, *u, 0, u->nbytes)) << t.name;
            continue;
        }
        auto ids = half.get_uint_array("reap.prune.layer." + std::to_string(it->second->layer) + ".kept");
        ASSERT_EQ(ids.size(), kept);
        if (it->second->role == ExpertRole::chunk_weights) {
            // GroveMoE's adjugate experts: the groups that keep any of their experts.
            const auto chunks = kept_chunks(std::vector<uint32_t>(ids.begin(), ids.end()), m.experts_per_chunk);
            ids.assign(chunks.begin(), chunks.end());
        }
        const uint64_t slice = it->second->slice_bytes;
        ASSERT_EQ(u->nbytes, slice * ids.size()) << t.name;
        for (size_t k = 0; k < ids.size(); k++) {
            EXPECT_TRUE(bytes_of(in, t, ids[k] * slice, slice) == bytes_of(half, *u, k * slice, slice))
                << t.name << " kept expert " << ids[k];
        }
    }
}

}  // namespace reap::test
