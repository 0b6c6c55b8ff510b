// GGUF files a fuzzer or a careless converter could hand us: every one is refused with one
// line naming the file, never with an abort inside ggml or llama.cpp, and none is written.
#include "core/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "gguf/moe_layout.h"
#include "support.h"

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>

using namespace reap;

namespace {

using EditKeys = std::function<void(gguf_context *)>;

// A small qwen3moe model: 2 layers, 8 experts, 2 used per token.
std::string small_model(int n_expert = 8) {
    synth::Options o;
    o.arch          = "qwen3moe";
    o.n_layer       = 2;
    o.n_embd        = 64;
    o.n_ff          = 64;
    o.n_expert      = n_expert;
    o.n_expert_used = 2;
    return test::synth_model(o);
}

// Copies `src` to `dst` with the same tensors and data; `edit` changes the key-value pairs and
// `extra` (optional) adds tensors, made in the given context.
void rewrite(const std::string & src, const std::string & dst, const EditKeys & edit,
             const std::function<void(ggml_context *, gguf_context *)> & extra = {}) {
    ggml_context * data = nullptr;
    gguf_context * in   = gguf_init_from_file(src.c_str(), {false, &data});
    ASSERT_NE(in, nullptr) << src;
    gguf_context * out = gguf_init_empty();
    gguf_set_kv(out, in);
    edit(out);
    for (int64_t i = 0; i < gguf_get_n_tensors(in); i++) {
        gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(in, i)));
    }
    ggml_context * more = ggml_init({1u << 20, nullptr, false});
    if (extra) extra(more, out);
    const std::string tmp = dst + ".tmp";
    EXPECT_TRUE(gguf_write_to_file(out, tmp.c_str(), false));
    std::filesystem::rename(tmp, dst);
    gguf_free(out);
    gguf_free(in);
    ggml_free(more);
    ggml_free(data);
}

// Replaces the first occurrence of `what` in the file's bytes by `with` (same length): how keys
// the gguf API cannot write (a NUL byte inside) get into a file.
void patch_bytes(const std::string & path, const std::string & what, const std::string & with) {
    ASSERT_EQ(what.size(), with.size());
    auto       b  = test::read_bytes(path);
    const auto it = std::search(b.begin(), b.end(), what.begin(), what.end());
    ASSERT_NE(it, b.end()) << what;
    std::copy(with.begin(), with.end(), it);
    test::write_bytes(path, b.data(), b.size());
}

std::string error_of(const std::function<void()> & f) {
    try {
        f();
    } catch (const Error & e) {
        return e.what();
    }
    return "(no error)";
}

// `reap inspect` on `path` fails cleanly: exit 1, no signal, one line naming the file at fault
// (`named`: `path` itself unless another part of its split set).
void expect_cli_refusal(const std::string & path, const std::string & why, std::string named = "") {
    if (named.empty()) named = path;
    const auto r = test::run_reap({"inspect", path});
    EXPECT_EQ(r.signal, 0) << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(named + ": "), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(HostileGguf, ExpertUsedCountAsAnArrayOfStringsIsAnErrorNotAnAbort) {
    const auto dir = test::tmp_dir();
    const auto p   = dir + "/used-strings.gguf";
    rewrite(small_model(), p, [](gguf_context * c) {
        const char * v[] = {"two", "two"};
        gguf_set_arr_str(c, "qwen3moe.expert_used_count", v, 2);
        gguf_set_arr_data(c, "reap.test.floats", GGUF_TYPE_FLOAT32, std::vector<float>{1, 2}.data(), 2);
    });
    const auto f = GgufFile::open(p);
    EXPECT_NE(error_of([&] { f.get_uint_array("qwen3moe.expert_used_count"); }).find("array of str"),
              std::string::npos);
    EXPECT_NE(error_of([&] { f.get_uint_array("reap.test.floats"); }).find("array of f32"), std::string::npos);
    EXPECT_THROW(f.get_uint_per_layer("qwen3moe.expert_used_count", 2), Error);
    EXPECT_THROW(analyze_moe(f), Error);
    expect_cli_refusal(p, "array of str");
}

TEST(HostileGguf, KeysThatAreEmptyOrHideANulByteAreRefusedAtOpen) {
    const auto dir = test::tmp_dir();
    // A key starting with a NUL byte reads as "": copying it (prune) made gguf_set_kv abort.
    const auto nul_first = dir + "/nul-first.gguf";
    rewrite(small_model(), nul_first, [](gguf_context * c) { gguf_set_val_u32(c, "Xreap.test.key", 1); });
    patch_bytes(nul_first, "Xreap.test.key", std::string("\0reap.test.key", 14));
    EXPECT_NE(error_of([&] { GgufFile::open(nul_first); }).find("empty key"), std::string::npos);
    expect_cli_refusal(nul_first, "empty key");

    // "general.name\0" reads as general.name and silently replaced it in the pruned output.
    const auto nul_last = dir + "/nul-last.gguf";
    rewrite(small_model(), nul_last, [](gguf_context * c) { gguf_set_val_str(c, "general.nameX", "impostor"); });
    patch_bytes(nul_last, "general.nameX", std::string("general.name\0", 13));
    EXPECT_NE(error_of([&] { GgufFile::open(nul_last); }).find("'general.name' appears twice"), std::string::npos);
    expect_cli_refusal(nul_last, "appears twice");
}

TEST(HostileGguf, HyperparametersLlamaCppAssertsOnAreRefused) {
    const auto dir = test::tmp_dir();
    struct Case {
        const char * name;
        EditKeys     edit;
        const char * why;
    };
    const std::vector<Case> cases = {
        {"groups-equal-experts", [](gguf_context * c) { gguf_set_val_u32(c, "qwen3moe.expert_group_count", 8); },
         "expert_group_count = 8, must be below the 8 experts"},
        {"groups-do-not-divide",
         [](gguf_context * c) {
             gguf_set_val_u32(c, "qwen3moe.expert_group_count", 3);
             gguf_set_val_u32(c, "qwen3moe.expert_group_used_count", 1);
         },
         "do not divide into"},
        {"group-used-missing", [](gguf_context * c) { gguf_set_val_u32(c, "qwen3moe.expert_group_count", 2); },
         "expert_group_used_count = 0"},
        {"group-used-all",
         [](gguf_context * c) {
             gguf_set_val_u32(c, "qwen3moe.expert_group_count", 2);
             gguf_set_val_u32(c, "qwen3moe.expert_group_used_count", 2);
         },
         "expert_group_used_count = 2"},
        {"used-zero", [](gguf_context * c) { gguf_set_val_u32(c, "qwen3moe.expert_used_count", 0); },
         "expert_used_count = 0"},
        {"used-above-experts", [](gguf_context * c) { gguf_set_val_u32(c, "qwen3moe.expert_used_count", 9); },
         "expert_used_count = 9"},
        {"nextn-above-layers", [](gguf_context * c) { gguf_set_val_u32(c, "qwen3moe.nextn_predict_layers", 3); },
         "nextn_predict_layers = 3"},
        {"too-many-layers", [](gguf_context * c) { gguf_set_val_u32(c, "qwen3moe.block_count", 513); },
         "more than llama.cpp's 512 layers"},
    };
    for (const auto & k : cases) {
        SCOPED_TRACE(k.name);
        const auto p = dir + "/" + k.name + ".gguf";
        rewrite(small_model(), p, k.edit);
        const auto f = GgufFile::open(p);
        EXPECT_NE(error_of([&] { analyze_moe(f); }).find(k.why), std::string::npos)
            << error_of([&] { analyze_moe(f); });
    }
    expect_cli_refusal(dir + "/groups-equal-experts.gguf", "expert_group_count");
    // eval hands the model to llama.cpp without a layout analysis: it checks the same rules.
    const auto bad  = dir + "/used-above-experts.gguf";
    const auto eval = test::run_reap({"eval", "-m", bad, "--pruned", small_model(), "-f",
                                      std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt", "-c", "64"});
    EXPECT_EQ(eval.signal, 0) << eval.err;
    EXPECT_EQ(eval.exit_code, 1) << eval.err;
    EXPECT_NE(eval.err.find(bad + ": qwen3moe.expert_used_count = 9"), std::string::npos) << eval.err;
    // A dense model passes the same check (it has no expert keys at all).
    test::write_dense_gguf(dir + "/dense.gguf");
    EXPECT_NO_THROW(check_llama_loadable(GgufFile::open(dir + "/dense.gguf")));
    const auto dense_with_used = dir + "/dense-used.gguf";
    rewrite(dir + "/dense.gguf", dense_with_used,
            [](gguf_context * c) { gguf_set_val_u32(c, "llama.expert_used_count", 2); });
    EXPECT_THROW(check_llama_loadable(GgufFile::open(dense_with_used)), Error);

    // Valid grouped routing passes; pruning it to a count that breaks the rules is refused.
    const auto ok = dir + "/groups-ok.gguf";
    rewrite(small_model(), ok, [](gguf_context * c) {
        gguf_set_val_u32(c, "qwen3moe.expert_group_count", 2);
        gguf_set_val_u32(c, "qwen3moe.expert_group_used_count", 1);
    });
    const MoeLayout m = analyze_moe(GgufFile::open(ok));
    EXPECT_NO_THROW(check_llama_limits(m, 4, "pruned"));
    EXPECT_THROW(check_llama_limits(m, 2, "pruned"), Error);  // as many groups as experts
    EXPECT_THROW(check_llama_limits(m, 3, "pruned"), Error);  // 3 experts do not divide into 2 groups
    EXPECT_THROW(check_llama_limits(m, 1, "pruned"), Error);  // fewer experts than used per token
}

TEST(HostileGguf, SplitPartsThatDisagreeAreRefused) {
    const auto dir = test::tmp_dir();
    struct Case {
        const char * name;
        int          part;  // which part to tamper with
        EditKeys     edit;
        const char * why;
    };
    const std::vector<Case> cases = {
        {"count", 1, [](gguf_context * c) { gguf_set_val_u16(c, "split.count", 2); }, "says it is part 2 of 2"},
        {"no", 1, [](gguf_context * c) { gguf_set_val_u16(c, "split.no", 0); }, "says it is part 1 of 3"},
        {"tensors", 0, [](gguf_context * c) { gguf_set_val_i32(c, "split.tensors.count", 999); },
         "split.tensors.count is 999"},
        {"missing", 2, [](gguf_context * c) { gguf_remove_key(c, "split.no"); }, "without the key split.no"},
        {"type", 2, [](gguf_context * c) { gguf_set_val_u32(c, "split.no", 2); }, "has type u32"},
    };
    for (const auto & k : cases) {
        SCOPED_TRACE(k.name);
        const std::string prefix = dir + "/" + k.name;
        const std::string first  = test::write_splits(small_model(), prefix, 3);
        char              part[1024];
        llama_split_path(part, sizeof(part), prefix.c_str(), k.part, 3);
        rewrite(part, part, k.edit);
        EXPECT_NE(error_of([&] { GgufFile::open(first); }).find(k.why), std::string::npos)
            << error_of([&] { GgufFile::open(first); });
        expect_cli_refusal(first, k.why, k.part == 0 ? first : part);
    }
    // The untouched set opens.
    EXPECT_EQ(GgufFile::open(test::write_splits(small_model(), dir + "/good", 3)).split_paths().size(), 3u);
}

TEST(HostileGguf, QuantizedExpertTensorSlicedInsideABlockIsRefused) {
    // A 1-D q8_0 tensor over 32 experts: one expert's slice is 1/32 of a block, so no pruned
    // copy of it is a valid tensor (prune wrote such a file and exited 0).
    const auto dir = test::tmp_dir();
    const auto p   = dir + "/1d-q8.gguf";
    rewrite(
        small_model(32), p, [](gguf_context *) {},
        [](ggml_context * ctx, gguf_context * out) {
            ggml_tensor * t = ggml_new_tensor_1d(ctx, GGML_TYPE_Q8_0, 32);
            std::memset(t->data, 0, ggml_nbytes(t));
            ggml_set_name(t, "blk.0.ffn_up_exps.bias");
            gguf_add_tensor(out, t);
        });
    const auto f = GgufFile::open(p);
    EXPECT_NE(error_of([&] { analyze_moe(f); }).find("not a whole number of blocks"), std::string::npos);
    expect_cli_refusal(p, "not a whole number of blocks");
}

TEST(GgufFileWriter, RefusesTensorDataThatDoesNotMatchTheMetadata) {
    const auto     dir  = test::tmp_dir();
    GgmlContextPtr meta = tensor_meta_context(1);
    GgufContextPtr ctx(gguf_init_empty());
    ggml_tensor *  t = ggml_new_tensor_1d(meta.get(), GGML_TYPE_Q8_0, 64);  // 2 blocks of 34 bytes
    ggml_set_name(t, "t");
    gguf_add_tensor(ctx.get(), t);

    const std::string    bad = dir + "/short.gguf";
    std::vector<uint8_t> bytes(68, 0);
    {
        GgufFileWriter w(bad, ctx.get());
        w.write(bytes.data(), 34);  // one block short
        EXPECT_NE(error_of([&] { w.end_tensor(); }).find("has 34 bytes of data but its type and shape need 68"),
                  std::string::npos);
        EXPECT_THROW(w.commit(), Error);  // not every tensor was written
    }
    EXPECT_FALSE(std::filesystem::exists(bad));

    const std::string good = dir + "/good.gguf";
    GgufFileWriter    w(good, ctx.get());
    w.write(bytes.data(), 68);
    EXPECT_EQ(w.end_tensor(), 28u);  // padded to 32 bytes
    w.commit();
    const auto f = GgufFile::open(good);
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(f.tensors()[0].nbytes, 68u);
}

}  // namespace
