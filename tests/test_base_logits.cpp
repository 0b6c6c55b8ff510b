// The compact rows of the base-logits file (eval/logprob_codec.h): what 16 bits per entry cost
// in KL divergence and top-1 agreement against float32 rows, at a synthetic model's vocabulary
// and at a real one's (151,936 entries, Qwen3's), and what they weigh on disk.
#include "core/fs_util.h"
#include "eval/base_logits.h"
#include "eval/logprob_codec.h"
#include "eval/metrics.h"
#include "gguf/content_id.h"
#include "support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

using namespace reap;

namespace {

struct KlError {
    double max_abs = 0, exact_sum = 0, coded_sum = 0;
    size_t top1_differs = 0, rows = 0;
};

// Compares KL(base -> model) and top-1 agreement on float32 base rows and on the same rows
// after a round trip through the codec.
void add_row(const std::vector<float> & base_logits, const std::vector<float> & model_logits, KlError & e) {
    std::vector<float> base, model, decoded;
    log_softmax(base_logits.data(), base_logits.size(), base);
    log_softmax(model_logits.data(), model_logits.size(), model);
    QuantizedRow row;
    encode_logprob_row(base.data(), base.size(), 0, row);
    EXPECT_EQ(invalid_quantized_row(row, 0), nullptr);
    decode_logprob_row(row, decoded);
    EXPECT_EQ(row.next_logprob, base[0]);
    const auto exact = compare_token(base.data(), model.data(), base.size(), 0);
    const auto coded = compare_token(decoded.data(), model.data(), base.size(), 0);
    e.max_abs        = std::max(e.max_abs, std::fabs(exact.kl - coded.kl));
    e.exact_sum += exact.kl;
    e.coded_sum += coded.kl;
    e.top1_differs += exact.top1_agrees != coded.top1_agrees;
    e.rows++;
}

TEST(LogprobCodec, KlWithin1e3AndSameTop1AtARealVocabularySize) {
    const size_t    n_vocab = 151936;
    std::mt19937_64 rng(42);
    KlError         e;
    // Spreads from flat to sharply peaked rows, the model a perturbed copy of the base: the KL
    // ranges from about 1e-3 to several nats.
    for (double spread : {0.5, 2.0, 4.0, 8.0}) {
        for (double noise : {0.05, 0.5, 2.0}) {
            std::normal_distribution<float> logit(0.0f, float(spread)), perturb(0.0f, float(noise));
            std::vector<float>              base(n_vocab), model(n_vocab);
            for (size_t v = 0; v < n_vocab; v++) {
                base[v]  = logit(rng);
                model[v] = base[v] + perturb(rng);
            }
            base[rng() % n_vocab] += float(3 * spread);  // a clear favourite
            add_row(base, model, e);
        }
    }
    std::printf(
        "151936 entries, %zu rows: max |KL(coded) - KL(float32)| = %.3g nats, mean KL %.6f vs %.6f, "
        "top-1 differs on %zu rows; %.5f bytes per entry\n",
        e.rows, e.max_abs, e.coded_sum / double(e.rows), e.exact_sum / double(e.rows), e.top1_differs,
        double(k_quantized_row_header + 2 * n_vocab) / double(n_vocab));
    EXPECT_LE(e.max_abs, 1e-3);
    EXPECT_EQ(e.top1_differs, 0u);
}

TEST(LogprobCodec, KlWithin1e3OnASyntheticModelsRows) {
    synth::Options o;
    o.n_layer              = 3;
    const std::string base = test::synth_model(o);
    o.seed += 1;  // same shape, other weights: a model that disagrees with the base
    const std::string other = test::synth_model(o);
    const auto        bytes = test::read_bytes(std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt");
    const std::string text(bytes.begin(), bytes.begin() + 500);  // under decode_logits' 512 tokens
    const auto        b = test::decode_logits(base, text), m = test::decode_logits(other, text);
    ASSERT_EQ(b.size(), m.size());
    ASSERT_GT(b.size(), 100u);
    KlError e;
    for (size_t i = 0; i < b.size(); i++)
        add_row(b[i], m[i], e);
    std::printf("synthetic model (%zu entries), %zu rows: max |KL diff| = %.3g, mean KL %.6f vs %.6f\n", b[0].size(),
                e.rows, e.max_abs, e.coded_sum / double(e.rows), e.exact_sum / double(e.rows));
    EXPECT_GT(e.exact_sum / double(e.rows), 1e-3);  // the models do differ
    EXPECT_LE(e.max_abs, 1e-3);
    EXPECT_LE(std::fabs(e.coded_sum - e.exact_sum) / double(e.rows), 1e-4);
    EXPECT_EQ(e.top1_differs, 0u);
}

TEST(LogprobCodec, EdgeRowsRoundTrip) {
    std::vector<float> decoded;
    QuantizedRow       row;
    // All equal: no range at all; the first entry stays the only top.
    std::vector<float> flat(10, float(-std::log(10.0)));
    encode_logprob_row(flat.data(), flat.size(), 3, row);
    EXPECT_EQ(invalid_quantized_row(row, 3), nullptr);
    decode_logprob_row(row, decoded);
    for (float v : decoded)
        EXPECT_NEAR(v, flat[0], 1e-6);
    EXPECT_EQ(row.codes[0], k_top_code);
    EXPECT_EQ(row.codes[1], 1);
    // A range beyond 32 nats, and an entry masked with -inf: what lies below the floor reads back
    // as probability 0; the next token keeps its exact value.
    std::vector<float> wide = {-1e-6f, -14.0f, -50.0f, -90.0f, -INFINITY};
    encode_logprob_row(wide.data(), wide.size(), 3, row);
    EXPECT_EQ(invalid_quantized_row(row, 3), nullptr);
    decode_logprob_row(row, decoded);
    EXPECT_EQ(row.next_logprob, -90.0f);
    EXPECT_NEAR(decoded[0], -1e-6, 1e-5);
    EXPECT_NEAR(decoded[1], -14.0, 32.0 / 65534);
    EXPECT_EQ(decoded[2], -INFINITY);
    EXPECT_EQ(decoded[4], -INFINITY);
    EXPECT_LE(decoded[0], 0.0f);
    // A model that masks the same entry: KL stays finite (0 here), not NaN or infinite.
    const auto self = compare_token(decoded.data(), wide.data(), wide.size(), 1);
    EXPECT_TRUE(std::isfinite(self.kl));
    EXPECT_NEAR(self.kl, 0.0, 1e-4);
    EXPECT_TRUE(self.top1_agrees);
}

TEST(LogprobCodec, RowsNoWriterMakesAreInvalid) {
    std::vector<float> lp = {-0.5f, -1.5f, -2.5f};
    QuantizedRow       good;
    encode_logprob_row(lp.data(), lp.size(), 1, good);
    ASSERT_EQ(invalid_quantized_row(good, 1), nullptr);
    auto bad = [&](auto change) {
        QuantizedRow r = good;
        change(r);
        return invalid_quantized_row(r, 1) != nullptr;
    };
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.scale = std::nanf(""); }));
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.scale = -r.scale; }));
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.floor = INFINITY; }));
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.floor = 1.0f; }));           // the top above 0
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.scale = 1.0f; }));           // a range of 65,535 nats
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.next_logprob = 0.25f; }));   // positive
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.next_logprob = -20.0f; }));  // its code says -1.5
    EXPECT_TRUE(bad([](QuantizedRow & r) { r.codes[0] = 0; }));           // no top entry
}

TEST(BaseLogitsFile, TwoBytesPerEntryAndTwelvePerPosition) {
    // -c 512 over 50,000 tokens at 151,936 entries: what a real held-out run writes.
    const uint64_t n_tokens = 50000, n_vocab = 151936;
    const uint64_t rows = scored_positions(n_tokens, 512, 0);
    EXPECT_EQ(rows, n_tokens / 512 * 511 + (n_tokens % 512 - 1));
    const uint64_t size = base_logits_file_size(n_tokens, 512, 0, n_vocab);
    EXPECT_EQ(size, sizeof(BaseLogitsHeader) + 4 * n_tokens + rows * (2 * n_vocab + 12));
    EXPECT_LE(double(size - sizeof(BaseLogitsHeader) - 4 * n_tokens) / double(rows) / double(n_vocab), 2.0001);
    // llama-perplexity's convention stores the second half of each window only.
    EXPECT_EQ(scored_positions(1024, 512, 256), 2u * 255);
    EXPECT_EQ(scored_positions(1024 + 200, 512, 256), 2u * 255);  // a last window too short to score
    EXPECT_EQ(scored_positions(1024 + 300, 512, 256), 2u * 255 + 43);
}

// A base-logits file knows its base by content (issue 21): another model saved under the same file
// name, of the same size, is refused; a copy of the base under another name is accepted.
TEST(BaseLogitsFile, KnowsItsBaseByContentNotByNameAndSize) {
    const std::string dir  = test::tmp_dir();
    const std::string text = REAP_SOURCE_DIR "/data/text/sample.txt";
    std::filesystem::create_directories(dir + "/one");
    std::filesystem::create_directories(dir + "/two");
    std::filesystem::create_directories(dir + "/copy");
    synth::Options o;
    o.n_layer = 2;
    o.seed    = 1;
    synth::write_model(o, dir + "/one/model.gguf");
    o.seed = 2;
    synth::write_model(o, dir + "/two/model.gguf");
    ASSERT_EQ(file_size(dir + "/one/model.gguf"), file_size(dir + "/two/model.gguf"));
    std::filesystem::copy_file(dir + "/one/model.gguf", dir + "/copy/renamed.gguf");
    EXPECT_NE(model_content_id(GgufFile::open(dir + "/one/model.gguf")),
              model_content_id(GgufFile::open(dir + "/two/model.gguf")));
    // gguf-split's bookkeeping aside, a split set is the same model
    EXPECT_EQ(model_content_id(GgufFile::open(dir + "/one/model.gguf")),
              model_content_id(GgufFile::open(test::write_splits(dir + "/one/model.gguf", dir + "/copy/split", 3))));

    const std::string lgt  = dir + "/one.lgt";
    const auto        made = test::run_reap(
               {"eval", "-m", dir + "/one/model.gguf", "-f", text, "-c", "64", "--base-logits", lgt, "--no-progress"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto eval_with = [&](const std::string & base, const std::string & logits) {
        return test::run_reap(
            {"eval", "-m", base, "--pruned", base, "-f", text, "-c", "64", "--base-logits", logits, "--no-progress"});
    };
    const auto other = eval_with(dir + "/two/model.gguf", lgt);
    EXPECT_EQ(other.exit_code, 1) << other.out;
    EXPECT_NE(other.err.find(lgt + ": made from the base model.gguf"), std::string::npos) << other.err;
    EXPECT_NE(other.err.find("is another model"), std::string::npos) << other.err;
    EXPECT_EQ(eval_with(dir + "/copy/renamed.gguf", lgt).exit_code, 0);

    // A file of the previous format (its base known by name and size) is refused as older.
    auto bytes = test::read_bytes(lgt);
    bytes[7]   = '2';
    test::write_bytes(dir + "/v2.lgt", bytes.data(), bytes.size());
    const auto v2 = eval_with(dir + "/one/model.gguf", dir + "/v2.lgt");
    EXPECT_EQ(v2.exit_code, 1);
    EXPECT_NE(v2.err.find("older reap (its base known by file name and size only"), std::string::npos) << v2.err;
}

}  // namespace
