// The GGUF reader: layer names, per-layer keys, bounds, and split models read as one.
#include "core/error.h"
#include "core/tensor_codec.h"
#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"
#include "support.h"

#include "ggml.h"
#include "llama.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace reap;

namespace {

TEST(TensorLayer, ParsesOnlyWellFormedNames) {
    std::string rest;
    EXPECT_EQ(tensor_layer("blk.12.ffn_up_exps.weight", &rest), 12);
    EXPECT_EQ(rest, "ffn_up_exps.weight");
    EXPECT_EQ(tensor_layer("blk.0.attn_q.weight"), 0);
    EXPECT_EQ(tensor_layer("token_embd.weight"), -1);
    EXPECT_EQ(tensor_layer("blk.x.attn_q.weight"), -1);
    EXPECT_EQ(tensor_layer("blk.3"), -1);
    EXPECT_EQ(tensor_layer("blk..a"), -1);
    EXPECT_EQ(tensor_layer("blk.99999999999.a"), -1);
}

TEST(GgufFile, KeysAndPerLayerArrays) {
    synth::Options o;
    o.arch       = "nemotron_h_moe";
    const auto f = GgufFile::open(test::synth_model(o));
    EXPECT_EQ(f.arch(), "nemotron_h_moe");
    EXPECT_EQ(f.get_uint("nemotron_h_moe.expert_count").value(), 16u);
    EXPECT_FALSE(f.get_uint("nemotron_h_moe.no_such_key").has_value());
    // head_count_kv is a per-layer array with attention only in layer 3 of the pattern.
    EXPECT_EQ(f.get_uint_per_layer("nemotron_h_moe.attention.head_count_kv", 6),
              (std::vector<uint64_t>{0, 0, 0, 2, 0, 0}));
    // a scalar expands to every layer
    EXPECT_EQ(f.get_uint_per_layer("nemotron_h_moe.expert_used_count", 3), (std::vector<uint64_t>{4, 4, 4}));
    EXPECT_THROW(f.get_uint_per_layer("nemotron_h_moe.attention.head_count_kv", 5), Error);
    EXPECT_NEAR(f.get_float("nemotron_h_moe.expert_weights_scale").value(), 2.5, 1e-6);
}

TEST(GgufFile, ReadsTensorBytesAndChecksBounds) {
    synth::Options o;
    o.type         = GGML_TYPE_F32;
    o.n_layer      = 2;
    const auto   f = GgufFile::open(test::synth_model(o));
    const auto * t = f.find_tensor("token_embd.weight");
    ASSERT_NE(t, nullptr);
    std::vector<float> row(size_t(t->ne[0]));
    f.read(*t, 0, row.data(), row.size() * sizeof(float));
    EXPECT_EQ(row[0], 1.0f);  // the planted routing anchor in residual dimension 0
    EXPECT_NE(row[1], 0.0f);
    EXPECT_THROW(f.read(*t, t->nbytes - 2, row.data(), 4), Error);
}

TEST(GgufFile, SplitModelReadsAsOne) {
    synth::Options o;
    o.n_layer        = 3;
    const auto whole = test::synth_model(o);
    const auto dir   = test::tmp_dir();
    const auto first = test::write_splits(whole, dir + "/model", 3);
    const auto a     = GgufFile::open(whole);
    const auto b     = GgufFile::open(first);
    ASSERT_EQ(b.split_paths().size(), 3u);
    EXPECT_EQ(a.tensors().size(), b.tensors().size());

    // Any split of the set opens the whole set.
    char second[1024];
    llama_split_path(second, sizeof(second), (dir + "/model").c_str(), 1, 3);
    EXPECT_EQ(GgufFile::open(second).tensors().size(), a.tensors().size());

    const auto ma = analyze_moe(a), mb = analyze_moe(b);
    EXPECT_EQ(ma.moe_layer_indices(), mb.moe_layer_indices());
    EXPECT_EQ(ma.expert_bytes(), mb.expert_bytes());
    for (const auto & t : a.tensors()) {
        const auto * u = b.find_tensor(t.name);
        ASSERT_NE(u, nullptr) << t.name;
        std::vector<uint8_t> x(t.nbytes), y(u->nbytes);
        a.read(t, 0, x.data(), x.size());
        b.read(*u, 0, y.data(), y.size());
        EXPECT_TRUE(x == y) << t.name;
    }
    // inspect through the command line on the split set
    const auto r = test::run_reap({"inspect", "--json", first});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["splits"].size(), 3u);

    // and llama.cpp agrees that it is the same model
    const auto la = test::decode_logits(whole, "hello world"), lb = test::decode_logits(first, "hello world");
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); i++) {
        for (size_t j = 0; j < la[i].size(); j++) {
            ASSERT_EQ(la[i][j], lb[i][j]);
        }
    }

    // A missing split is a clear error.
    std::remove(second);
    EXPECT_THROW(GgufFile::open(first), Error);
}

}  // namespace

// ---- core/tensor_codec -----------------------------------------------------------------------------

TEST(TensorCodec, RoundTripsAndRefusesWhatGgmlCannotConvert) {
    std::vector<float> x(256);
    for (size_t i = 0; i < x.size(); i++)
        x[i] = float(std::sin(double(i)));
    for (ggml_type t : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K}) {
        ASSERT_TRUE(reap::can_quantize(t, 256)) << ggml_type_name(t);
        std::vector<uint8_t> q(ggml_row_size(t, 256));
        EXPECT_EQ(reap::quantize(t, x.data(), q.data(), 1, 256), q.size());
        std::vector<float> y(256);
        reap::dequantize(t, q.data(), y.data(), 256);
        // within a 4-bit step of a range of 2 (Q4_K); far closer for the others
        for (size_t i = 0; i < x.size(); i++)
            ASSERT_NEAR(x[i], y[i], 0.1) << ggml_type_name(t) << " " << i;
    }
    // A row that is not whole blocks, a type that needs an importance matrix, and one ggml cannot
    // encode: errors, never ggml's abort.
    std::vector<uint8_t> q(1024);
    EXPECT_FALSE(reap::can_quantize(GGML_TYPE_Q4_K, 128));
    EXPECT_THROW(reap::quantize(GGML_TYPE_Q4_K, x.data(), q.data(), 1, 128), reap::Error);
    EXPECT_FALSE(reap::can_quantize(GGML_TYPE_IQ2_XXS, 256));
    EXPECT_TRUE(reap::can_quantize(GGML_TYPE_IQ2_XXS, 256, true));
    EXPECT_THROW(reap::quantize(GGML_TYPE_I32, x.data(), q.data(), 1, 256), reap::Error);
    std::vector<float> y(256);
    EXPECT_THROW(reap::dequantize(GGML_TYPE_I32, q.data(), y.data(), 4), reap::Error);
    EXPECT_THROW(reap::dequantize(GGML_TYPE_Q8_0, q.data(), y.data(), 16), reap::Error);  // half a block
    EXPECT_EQ(reap::ggml_type_of_dtype("BF16"), GGML_TYPE_BF16);
    EXPECT_EQ(reap::ggml_type_of_dtype("F8_E4M3"), GGML_TYPE_COUNT);
}
