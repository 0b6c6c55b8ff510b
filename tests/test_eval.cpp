// reap eval: metrics against hand-computed values, and the command on real models.
#include "eval/evaluator.h"
#include "eval/logprob_row.h"
#include "eval/metrics.h"
#include "support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_text = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

TEST(EvalMetrics, HandComputedOnATinyVocabulary) {
    // base: p = (1/4, 1/2, 1/4); model: uniform q = 1/3
    const float base_logits[3]  = {0.0f, float(std::log(2.0)), 0.0f};
    const float model_logits[3] = {5.0f, 5.0f, 5.0f};
    std::vector<float> b, m;
    log_softmax(base_logits, 3, b);
    log_softmax(model_logits, 3, m);
    EXPECT_NEAR(std::exp(b[1]), 0.5, 1e-7);
    EXPECT_NEAR(std::exp(m[0]), 1.0 / 3.0, 1e-7);
    const auto c = compare_token(b.data(), m.data(), 3, 2);
    const double kl = 0.25 * std::log(0.25 * 3) + 0.5 * std::log(0.5 * 3) + 0.25 * std::log(0.25 * 3);
    EXPECT_NEAR(c.kl, kl, 1e-6);
    EXPECT_NEAR(c.nll, std::log(3.0), 1e-6);
    EXPECT_FALSE(c.top1_agrees);  // base argmax 1, model argmax 0 (first of the ties)

    const auto self = compare_token(b.data(), b.data(), 3, 1);
    EXPECT_EQ(self.kl, 0.0);
    EXPECT_TRUE(self.top1_agrees);
    EXPECT_NEAR(self.nll, std::log(2.0), 1e-6);
}

// The 16-bit rows of the base-logits file: KL within 1e-3 of the exact value, 2 bytes per
// vocabulary entry, on flat, peaked and very peaked distributions of a 32k vocabulary.
TEST(EvalMetrics, CompactRowsKeepKlWithin1e3) {
    const size_t       n_vocab = 32000;
    std::mt19937       rng(7);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    for (float sharpness : {0.5f, 3.0f, 12.0f}) {
        for (int trial = 0; trial < 4; trial++) {
            std::vector<float> base_logits(n_vocab), model_logits(n_vocab), b, m;
            for (size_t v = 0; v < n_vocab; v++) {
                base_logits[v]  = sharpness * noise(rng);
                model_logits[v] = base_logits[v] + 0.7f * sharpness * noise(rng);
            }
            log_softmax(base_logits.data(), n_vocab, b);
            log_softmax(model_logits.data(), n_vocab, m);
            const int32_t next  = int32_t(trial * 97);
            const auto    exact = compare_token(b.data(), m.data(), n_vocab, next);
            std::vector<uint8_t> bytes;
            encode_row(b, next, bytes);
            EXPECT_LE(bytes.size(), 2 * n_vocab + 20);
            BaseRow row;
            ASSERT_TRUE(decode_row(bytes.data(), uint32_t(n_vocab), row));
            const auto compact = compare_row(row, m.data(), n_vocab, next);
            EXPECT_NEAR(compact.kl, exact.kl, 1e-3) << "sharpness " << sharpness;
            EXPECT_EQ(compact.nll, exact.nll);
            EXPECT_EQ(compact.top1_agrees, exact.top1_agrees);
            EXPECT_EQ(row.next_logprob, b[size_t(next)]);
            // the base against itself
            EXPECT_NEAR(compare_row(row, b.data(), n_vocab, next).kl, 0.0, 1e-3);
        }
    }
}

std::string strfmt_kl(double v) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.8f", v);
    return b;
}

struct Models {
    std::string base, pruned, dir;
};

Models make_models() {
    Models m;
    m.dir = test::tmp_dir();
    synth::Options o;
    o.n_layer = 3;
    m.base    = test::synth_model(o);
    const auto p = test::run_reap({"profile", "-m", m.base, "--data", std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl",
                                   "--max-samples", "8", "-o", m.dir + "/s.json", "--no-progress"});
    EXPECT_EQ(p.exit_code, 0) << p.err;
    m.pruned     = m.dir + "/pruned.gguf";
    const auto q = test::run_reap({"prune", "-m", m.base, "--stats", m.dir + "/s.json", "--keep-ratio", "0.5", "-o",
                                   m.pruned, "--no-progress"});
    EXPECT_EQ(q.exit_code, 0) << q.err;
    return m;
}

TEST(Eval, SelfIsExactPrunedDiffersAndLogitsAreReused) {
    const Models m = make_models();
    const auto r = test::run_reap({"eval", "-m", m.base, "--pruned", m.base, m.pruned, "--data", k_text, "-c", "64",
                                   "--base-logits", m.dir + "/base.lgt", "-o", m.dir + "/t.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json t = json::parse(test::read_bytes(m.dir + "/t.json"));
    ASSERT_EQ(t.size(), 3u);
    // base row and the base model compared with itself (the stored 16-bit rows: within 1e-3)
    EXPECT_EQ(t[0]["kl_mean"], 0.0);
    for (int i : {0, 1}) {
        EXPECT_NEAR(t[i]["kl_mean"].get<double>(), 0.0, 1e-4);
        EXPECT_NEAR(t[i]["kl_p99"].get<double>(), 0.0, 1e-3);
        EXPECT_EQ(t[i]["top1_agreement"], 1.0);
    }
    EXPECT_DOUBLE_EQ(t[0]["ppl"].get<double>(), t[1]["ppl"].get<double>());
    EXPECT_GT(t[0]["ppl"].get<double>(), 1.0);
    // the pruned model is measurably different
    EXPECT_GT(t[2]["kl_mean"].get<double>(), 1e-4);
    EXPECT_GE(t[2]["kl_p99"].get<double>(), t[2]["kl_mean"].get<double>());
    EXPECT_LT(t[2]["top1_agreement"].get<double>(), 1.0);
    EXPECT_LT(t[2]["file_size"].get<uint64_t>(), t[0]["file_size"].get<uint64_t>());
    EXPECT_GT(t[2]["tokens_scored"].get<uint64_t>(), 300u);
    EXPECT_NE(r.out.find("KL mean"), std::string::npos);

    // Reuse: no base model at all; identical numbers from the stored log-probabilities.
    const auto again = test::run_reap({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits",
                                       m.dir + "/base.lgt", "-o", m.dir + "/t2.csv", "--no-progress"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const auto csv = test::read_bytes(m.dir + "/t2.csv");
    const std::string c(csv.begin(), csv.end());
    EXPECT_EQ(c.rfind("model,file_size,ppl,kl_mean", 0), 0u) << c;
    EXPECT_NE(c.find(std::to_string(t[2]["tokens_scored"].get<uint64_t>())), std::string::npos);
    EXPECT_NE(c.find(strfmt_kl(t[2]["kl_mean"].get<double>())), std::string::npos) << c;
}


TEST(Eval, RefusesMismatchedLogitsAndBadInput) {
    const Models m = make_models();
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits",
                              m.dir + "/base.lgt", "--no-progress"}).exit_code, 0);
    auto refuse = [&](std::vector<std::string> args, const std::string & why) {
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(r.signal, 0);
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    };
    const std::string other = m.dir + "/other.txt";
    std::ofstream(other) << "A different held-out text gives different tokens entirely, so it cannot be compared.\n";
    refuse({"eval", "--pruned", m.pruned, "--data", other, "-c", "64", "--base-logits", m.dir + "/base.lgt"},
           "tokenizes differently");
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "32", "--base-logits", m.dir + "/base.lgt"},
           "made with -c 64");
    // a logits file with another vocabulary size, and a truncated one
    auto bytes = test::read_bytes(m.dir + "/base.lgt");
    auto vocab = bytes;
    vocab[8] ^= 1;
    test::write_bytes(m.dir + "/vocab.lgt", vocab.data(), vocab.size());
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits", m.dir + "/vocab.lgt"}, "vocab.lgt");
    test::write_bytes(m.dir + "/cut.lgt", bytes.data(), bytes.size() - 100);
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits", m.dir + "/cut.lgt"}, "truncated");
    test::write_bytes(m.dir + "/junk.lgt", "not logits at all", 17);
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "--base-logits", m.dir + "/junk.lgt"}, "not a reap base-logits file");

    const std::string empty = m.dir + "/empty.txt";
    std::ofstream(empty) << "  \n";
    refuse({"eval", "-m", m.base, "--pruned", m.pruned, "--data", empty}, "empty");
    refuse({"eval", "-m", m.base, "--pruned", m.pruned, "--data", m.dir + "/nope.txt"}, "nope.txt");
    refuse({"eval", "-m", m.dir + "/nope.gguf", "--pruned", m.pruned, "--data", k_text}, "nope.gguf");
    refuse({"eval", "--pruned", m.pruned, "--data", k_text}, "give -m BASE");
}


// ---- hardening ---------------------------------------------------------------------------------

std::string read_text(const std::string & path) {
    const auto b = test::read_bytes(path);
    return std::string(b.begin(), b.end());
}

TEST(EvalHardening, RefusesAnOutputThatIsAnInput) {
    const Models m = make_models();
    const std::string text = m.dir + "/held-out.txt";
    std::ofstream(text) << read_text(k_text);
    ASSERT_EQ(::symlink(m.base.c_str(), (m.dir + "/base-link.gguf").c_str()), 0);
    ASSERT_EQ(::link(text.c_str(), (m.dir + "/text-hardlink.txt").c_str()), 0);
    const std::string base_before = read_text(m.base), text_before = read_text(text);
    auto refuse = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"eval", "-m", m.base, "--pruned", m.pruned, "--data", text, "-c", "64",
                                         "--no-progress"};
        args.insert(args.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find("is also an input"), std::string::npos) << r.err;
    };
    refuse({"-o", m.base});
    refuse({"-o", m.pruned});
    refuse({"-o", text});
    refuse({"-o", m.dir + "/base-link.gguf"});
    refuse({"-o", m.dir + "/text-hardlink.txt"});
    // the table over an existing base-logits file that this run reads
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--data", text, "-c", "64", "--base-logits", m.dir + "/b.lgt",
                              "--no-progress"}).exit_code, 0);
    refuse({"--base-logits", m.dir + "/b.lgt", "-o", m.dir + "/b.lgt"});
    EXPECT_EQ(read_text(m.base), base_before);
    EXPECT_EQ(read_text(text), text_before);
}

TEST(EvalHardening, TemporaryLogitsGoToTheTempFolderNotBesideTheData) {
    const Models m = make_models();
    const std::string data_dir = m.dir + "/data", tmp = m.dir + "/tmp";
    std::filesystem::create_directories(data_dir);
    std::filesystem::create_directories(tmp);
    const std::string text = data_dir + "/held-out.txt";
    std::ofstream(text) << read_text(k_text);
    // Where the old code put its temporary: a directory there made it fail.
    std::filesystem::create_directories(text + ".base-logits.tmp");
    ::setenv("TMPDIR", tmp.c_str(), 1);
    const auto r = test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", text, "-c", "64",
                                   "--no-progress"});
    ::unsetenv("TMPDIR");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(std::filesystem::is_directory(text + ".base-logits.tmp"));
    EXPECT_TRUE(std::filesystem::is_empty(tmp)) << "the temporary was not removed";
    size_t n = 0;
    for (const auto & e : std::filesystem::directory_iterator(data_dir)) n += e.is_regular_file() ? 1 : 0;
    EXPECT_EQ(n, 1u) << "something was written beside the data";
}

TEST(EvalHardening, RefusesABaseOtherThanTheOneTheLogitsWereMadeFrom) {
    const Models m = make_models();
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--data", k_text, "-c", "64", "--base-logits", m.dir + "/b.lgt",
                              "--no-progress"}).exit_code, 0);
    const auto wrong = test::run_reap({"eval", "-m", m.pruned, "--pruned", m.pruned, "--data", k_text, "-c", "64",
                                       "--base-logits", m.dir + "/b.lgt", "--no-progress"});
    EXPECT_EQ(wrong.exit_code, 1) << wrong.err;
    EXPECT_NE(wrong.err.find("made from the base"), std::string::npos) << wrong.err;
    // the right base is accepted
    const auto right = test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", k_text, "-c", "64",
                                       "--base-logits", m.dir + "/b.lgt", "--no-progress"});
    EXPECT_EQ(right.exit_code, 0) << right.err;
}

// Base-logits files from the fuzzing campaign, and mutations of a real one: each is refused
// with one line naming the file, never a crash, a huge allocation or a NaN table.
TEST(EvalHardening, HostileBaseLogitsFilesAreRefused) {
    const Models m = make_models();
    auto refuse = [&](const std::string & file, const std::string & why) {
        const auto r = test::run_reap({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits",
                                       file, "--no-progress"});
        EXPECT_EQ(r.exit_code, 1) << file << ": " << r.err;
        EXPECT_EQ(r.signal, 0) << file;
        EXPECT_NE(r.err.find(file + ": "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    };
    const std::string fuzz = std::string(REAP_SOURCE_DIR) + "/tests/data/fuzz/";
    refuse(fuzz + "bl_badtok.bin", "outside the vocabulary");   // token id -2e9
    refuse(fuzz + "bl_badtok2.bin", "outside the vocabulary");  // token id 100535 of 535
    refuse(fuzz + "bl_ntok1.bin", "corrupt");                   // one token: nothing to score
    refuse(fuzz + "bl_huge.bin", "corrupt");                    // n_tokens 2^33 in 304 bytes
    refuse(fuzz + "bl_huge2.bin", "corrupt");                   // n_tokens 2^60
    refuse(fuzz + "bl_ntok2p29.bin", "corrupt");                // n_tokens 2^29

    const std::string good = m.dir + "/good.lgt";
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--data", k_text, "-c", "64", "--base-logits", good,
                              "--no-progress"}).exit_code, 0);
    const auto     bytes    = test::read_bytes(good);
    uint32_t       n_vocab  = 0;
    uint64_t       n_tokens = 0;
    std::memcpy(&n_vocab, bytes.data() + 8, 4);
    std::memcpy(&n_tokens, bytes.data() + 24, 8);
    const size_t   tokens_at = 296, rows_at = tokens_at + n_tokens * 4;
    auto mutate = [&](const std::string & name, size_t at, const void * v, size_t n) {
        auto b = bytes;
        std::memcpy(b.data() + at, v, n);
        test::write_bytes(m.dir + "/" + name, b.data(), b.size());
        return m.dir + "/" + name;
    };
    const int32_t out_of_vocab = int32_t(n_vocab);
    refuse(mutate("tok.lgt", tokens_at + 4, &out_of_vocab, 4), "outside the vocabulary");
    // a stored row: sum p log p, log p(next), argmax, floor, step, then the 16-bit entries
    const size_t row_bytes = 20 + 2 * size_t(n_vocab);
    const float  nan = std::nanf(""), positive = 0.5f, inf = -INFINITY;
    refuse(mutate("nan.lgt", rows_at, &nan, 4), "impossible log-probability");
    refuse(mutate("pos.lgt", rows_at + row_bytes + 4, &positive, 4), "impossible log-probability");
    refuse(mutate("inf.lgt", rows_at + 12, &inf, 4), "impossible log-probability");
    refuse(mutate("argmax.lgt", rows_at + 8, &out_of_vocab, 4), "impossible log-probability");
}

TEST(EvalHardening, TableSaysWhatItKnowsAndWritesOnlyJsonOrCsv) {
    const Models m = make_models();
    const std::string lgt = m.dir + "/b.lgt";
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--data", k_text, "-c", "64", "--base-logits", lgt,
                              "--no-progress"}).exit_code, 0);
    // -o x.txt was silently written as JSON
    const auto txt = test::run_reap({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits", lgt,
                                     "-o", m.dir + "/t.txt", "--no-progress"});
    EXPECT_EQ(txt.exit_code, 1) << txt.err;
    EXPECT_NE(txt.err.find(".json or .csv"), std::string::npos) << txt.err;
    EXPECT_FALSE(std::filesystem::exists(m.dir + "/t.txt"));
    // two pruned models with one file name: the table shows their paths; the base read from its
    // logits file was not timed, so no speed
    std::filesystem::create_directories(m.dir + "/a");
    std::filesystem::create_directories(m.dir + "/b");
    std::filesystem::copy_file(m.pruned, m.dir + "/a/model.gguf");
    std::filesystem::copy_file(m.pruned, m.dir + "/b/model.gguf");
    const auto r = test::run_reap({"eval", "--pruned", m.dir + "/a/model.gguf", m.dir + "/b/model.gguf", "--data",
                                   k_text, "-c", "64", "--base-logits", lgt, "-o", m.dir + "/t.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(m.dir + "/a/model.gguf"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(m.dir + "/b/model.gguf"), std::string::npos) << r.out;
    const json t = json::parse(test::read_bytes(m.dir + "/t.json"));
    EXPECT_TRUE(t[0]["tokens_per_s"].is_null()) << t.dump();
    EXPECT_GT(t[1]["tokens_per_s"].get<double>(), 0.0);
    EXPECT_EQ(r.out.find(" 0.0\n"), std::string::npos) << r.out;
}

TEST(EvalHardening, LlamaPerplexityConventionScoresTheSecondHalf) {
    const Models m = make_models();
    const std::string lgt = m.dir + "/b.lgt";
    auto run = [&](bool half, const std::string & out) {
        std::vector<std::string> args = {"eval", "-m", m.base, "--pruned", m.pruned, "--data", k_text, "-c", "64",
                                         "--base-logits", lgt, "-o", out, "--no-progress"};
        if (half) args.push_back("--ppl-second-half");
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find(half ? "second half of every window" : "every position of every window"), std::string::npos)
            << r.out;
        return json::parse(test::read_bytes(out));
    };
    const json all = run(false, m.dir + "/all.json"), half = run(true, m.dir + "/half.json");
    // 64-token windows: positions 32..62 of 0..62 in every full window
    EXPECT_LT(half[1]["tokens_scored"].get<uint64_t>() * 2, all[1]["tokens_scored"].get<uint64_t>() + 8);
    EXPECT_GT(half[1]["tokens_scored"].get<uint64_t>() * 3, all[1]["tokens_scored"].get<uint64_t>());
    EXPECT_NE(half[1]["ppl"], all[1]["ppl"]);
    EXPECT_EQ(half[1]["scored"], "second half");
    EXPECT_EQ(all[1]["scored"], "every position");
    EXPECT_EQ(half[0]["kl_mean"], 0.0);
}

}  // namespace
