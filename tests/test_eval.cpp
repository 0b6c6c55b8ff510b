// reap eval: metrics against hand-computed values, and the command on real models.
#include "core/error.h"
#include "eval/eval_output.h"
#include "eval/evaluator.h"
#include "eval/metrics.h"
#include "support.h"
#include "support_models.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_text = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

TEST(EvalMetrics, HandComputedOnATinyVocabulary) {
    // base: p = (1/4, 1/2, 1/4); model: uniform q = 1/3
    const float        base_logits[3]  = {0.0f, float(std::log(2.0)), 0.0f};
    const float        model_logits[3] = {5.0f, 5.0f, 5.0f};
    std::vector<float> b, m;
    log_softmax(base_logits, 3, b);
    log_softmax(model_logits, 3, m);
    EXPECT_NEAR(std::exp(b[1]), 0.5, 1e-7);
    EXPECT_NEAR(std::exp(m[0]), 1.0 / 3.0, 1e-7);
    const auto   c  = compare_token(b.data(), m.data(), 3, 2);
    const double kl = 0.25 * std::log(0.25 * 3) + 0.5 * std::log(0.5 * 3) + 0.25 * std::log(0.25 * 3);
    EXPECT_NEAR(c.kl, kl, 1e-6);
    EXPECT_NEAR(c.nll, std::log(3.0), 1e-6);
    EXPECT_FALSE(c.top1_agrees);  // base argmax 1, model argmax 0 (first of the ties)

    const auto self = compare_token(b.data(), b.data(), 3, 1);
    EXPECT_EQ(self.kl, 0.0);
    EXPECT_TRUE(self.top1_agrees);
    EXPECT_NEAR(self.nll, std::log(2.0), 1e-6);
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
    m.pruned  = test::profile_and_halve(m.base, m.dir).pruned;
    return m;
}

TEST(Eval, SelfIsExactPrunedDiffersAndLogitsAreReused) {
    const Models m = make_models();
    const auto   r = test::run_reap({"eval", "-m", m.base, "--pruned", m.base, m.pruned, "--data", k_text, "-c", "64",
                                     "--base-logits", m.dir + "/base.lgt", "-o", m.dir + "/t.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json t = json::parse(test::read_bytes(m.dir + "/t.json"));
    ASSERT_EQ(t.size(), 3u);
    // base row and the base model compared with itself: exact for the base row, within the
    // 16-bit rows' quantisation (far below 1e-3) for the model compared with its stored rows
    EXPECT_EQ(t[0]["kl_mean"], 0.0);
    EXPECT_EQ(t[0]["kl_p99"], 0.0);
    EXPECT_LT(t[1]["kl_mean"].get<double>(), 1e-5);
    EXPECT_LT(t[1]["kl_p99"].get<double>(), 1e-4);
    for (int i : {0, 1})
        EXPECT_EQ(t[i]["top1_agreement"], 1.0);
    EXPECT_DOUBLE_EQ(t[0]["ppl"].get<double>(), t[1]["ppl"].get<double>());
    EXPECT_GT(t[0]["ppl"].get<double>(), 1.0);
    // the pruned model is measurably different
    EXPECT_GT(t[2]["kl_mean"].get<double>(), 1e-4);
    EXPECT_GE(t[2]["kl_p99"].get<double>(), t[2]["kl_mean"].get<double>());
    EXPECT_LT(t[2]["top1_agreement"].get<double>(), 1.0);
    EXPECT_LT(t[2]["file_size"].get<uint64_t>(), t[0]["file_size"].get<uint64_t>());
    EXPECT_GT(t[2]["tokens_scored"].get<uint64_t>(), 300u);
    EXPECT_NE(r.out.find("KL mean"), std::string::npos);
    EXPECT_NE(r.out.find("--ppl-convention all"), std::string::npos) << r.out;
    for (int i : {0, 1, 2})
        EXPECT_EQ(t[i]["ppl_convention"], "all");
    // 2 bytes per vocabulary entry and 12 per scored position, after the header and the tokens
    const uint64_t n_scored = t[2]["tokens_scored"].get<uint64_t>();
    const auto     lgt      = test::read_bytes(m.dir + "/base.lgt");
    uint32_t       n_vocab  = 0;
    uint64_t       n_tokens = 0;
    std::memcpy(&n_vocab, lgt.data() + 8, 4);
    std::memcpy(&n_tokens, lgt.data() + 24, 8);
    EXPECT_EQ(lgt.size(), 304 + 4 * n_tokens + n_scored * (2 * uint64_t(n_vocab) + 12));

    // Reuse: no base model at all; identical numbers from the stored log-probabilities.
    const auto again = test::run_reap({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits",
                                       m.dir + "/base.lgt", "-o", m.dir + "/t2.csv", "--no-progress"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const auto        csv = test::read_bytes(m.dir + "/t2.csv");
    const std::string c(csv.begin(), csv.end());
    EXPECT_EQ(c.rfind("model,file_size,ppl,kl_mean", 0), 0u) << c;
    EXPECT_NE(c.find(std::to_string(t[2]["tokens_scored"].get<uint64_t>())), std::string::npos);
    EXPECT_NE(c.find(strfmt_kl(t[2]["kl_mean"].get<double>())), std::string::npos) << c;
    // The base row from the file: the same PPL as when the base model ran (the rows keep the
    // next token's exact log-probability), and no speed rather than 0.
    EXPECT_NE(c.find(strfmt("%.6f,", t[0]["ppl"].get<double>())), std::string::npos) << c;
    EXPECT_NE(again.out.find(" -\n"), std::string::npos) << again.out;
    EXPECT_EQ(again.out.find(" 0.0\n"), std::string::npos) << again.out;
}

TEST(Eval, RefusesMismatchedLogitsAndBadInput) {
    const Models m = make_models();
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits",
                              m.dir + "/base.lgt", "--no-progress"})
                  .exit_code,
              0);
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
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits", m.dir + "/vocab.lgt"},
           "vocab.lgt");
    test::write_bytes(m.dir + "/cut.lgt", bytes.data(), bytes.size() - 100);
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits", m.dir + "/cut.lgt"},
           "truncated");
    test::write_bytes(m.dir + "/junk.lgt", "not logits at all", 17);
    refuse({"eval", "--pruned", m.pruned, "--data", k_text, "--base-logits", m.dir + "/junk.lgt"},
           "not a reap base-logits file");

    const std::string empty = m.dir + "/empty.txt";
    std::ofstream(empty) << "  \n";
    refuse({"eval", "-m", m.base, "--pruned", m.pruned, "--data", empty}, "empty");
    refuse({"eval", "-m", m.base, "--pruned", m.pruned, "--data", m.dir + "/nope.txt"}, "nope.txt");
    refuse({"eval", "-m", m.dir + "/nope.gguf", "--pruned", m.pruned, "--data", k_text}, "nope.gguf");
    const auto no_base = test::run_reap({"eval", "--pruned", m.pruned, "--data", k_text});
    EXPECT_EQ(no_base.exit_code, 2) << no_base.err;  // a usage error (issue 21)
    EXPECT_NE(no_base.err.find("give -m BASE"), std::string::npos) << no_base.err;
}

// ---- hardening ---------------------------------------------------------------------------------

std::string read_text(const std::string & path) {
    const auto b = test::read_bytes(path);
    return std::string(b.begin(), b.end());
}

TEST(EvalHardening, RefusesAnOutputThatIsAnInput) {
    const Models      m    = make_models();
    const std::string text = m.dir + "/held-out.txt";
    std::ofstream(text) << read_text(k_text);
    ASSERT_EQ(::symlink(m.base.c_str(), (m.dir + "/base-link.gguf").c_str()), 0);
    ASSERT_EQ(::link(text.c_str(), (m.dir + "/text-hardlink.txt").c_str()), 0);
    const std::string base_before = read_text(m.base), text_before = read_text(text);
    auto              refuse = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"eval",   "-m", m.base, "--pruned", m.pruned,
                                         "--data", text, "-c",   "64",       "--no-progress"};
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
                              "--no-progress"})
                  .exit_code,
              0);
    refuse({"--base-logits", m.dir + "/b.lgt", "-o", m.dir + "/b.lgt"});
    EXPECT_EQ(read_text(m.base), base_before);
    EXPECT_EQ(read_text(text), text_before);
}

TEST(EvalHardening, TemporaryLogitsGoToTheTempFolderNotBesideTheData) {
    const Models      m        = make_models();
    const std::string data_dir = m.dir + "/data", tmp = m.dir + "/tmp";
    std::filesystem::create_directories(data_dir);
    std::filesystem::create_directories(tmp);
    const std::string text = data_dir + "/held-out.txt";
    std::ofstream(text) << read_text(k_text);
    // Where the old code put its temporary: a directory there made it fail.
    std::filesystem::create_directories(text + ".base-logits.tmp");
    ::setenv("TMPDIR", tmp.c_str(), 1);
    const auto r =
        test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", text, "-c", "64", "--no-progress"});
    ::unsetenv("TMPDIR");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(std::filesystem::is_directory(text + ".base-logits.tmp"));
    EXPECT_TRUE(std::filesystem::is_empty(tmp)) << "the temporary was not removed";
    size_t n = 0;
    for (const auto & e : std::filesystem::directory_iterator(data_dir))
        n += e.is_regular_file() ? 1 : 0;
    EXPECT_EQ(n, 1u) << "something was written beside the data";
}

TEST(EvalHardening, RefusesABaseOtherThanTheOneTheLogitsWereMadeFrom) {
    const Models m = make_models();
    ASSERT_EQ(test::run_reap({"eval", "-m", m.base, "--data", k_text, "-c", "64", "--base-logits", m.dir + "/b.lgt",
                              "--no-progress"})
                  .exit_code,
              0);
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
    const Models m      = make_models();
    auto         refuse = [&](const std::string & file, const std::string & why) {
        const auto r = test::run_reap(
                    {"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits", file, "--no-progress"});
        EXPECT_EQ(r.exit_code, 1) << file << ": " << r.err;
        EXPECT_EQ(r.signal, 0) << file;
        EXPECT_NE(r.err.find(file + ": "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    };
    // A file of the first format (float32 rows; here one from the fuzzing campaign).
    refuse(std::string(REAP_SOURCE_DIR) + "/tests/data/fuzz/bl_badtok.bin", "older reap");

    const std::string good = m.dir + "/good.lgt";
    ASSERT_EQ(
        test::run_reap({"eval", "-m", m.base, "--data", k_text, "-c", "64", "--base-logits", good, "--no-progress"})
            .exit_code,
        0);
    const auto bytes    = test::read_bytes(good);
    uint32_t   n_vocab  = 0;
    uint64_t   n_tokens = 0;
    std::memcpy(&n_vocab, bytes.data() + 8, 4);
    std::memcpy(&n_tokens, bytes.data() + 24, 8);
    const size_t tokens_at = 304, rows_at = tokens_at + n_tokens * 4, row_bytes = 12 + 2 * size_t(n_vocab);
    auto         mutate = [&](const std::string & name, std::vector<std::pair<size_t, std::vector<uint8_t>>> edits) {
        auto b = bytes;
        for (const auto & [at, v] : edits)
            std::memcpy(b.data() + at, v.data(), v.size());
        test::write_bytes(m.dir + "/" + name, b.data(), b.size());
        return m.dir + "/" + name;
    };
    auto le = [](auto v) {
        std::vector<uint8_t> out(sizeof(v));
        std::memcpy(out.data(), &v, sizeof(v));
        return out;
    };
    // What the fuzzing campaign found, in this format: token ids outside the vocabulary, a
    // single token (nothing to score), counts the file's size cannot hold (2^29, 2^33, 2^60).
    refuse(mutate("badtok.lgt", {{tokens_at, le(int32_t(-2000000000))}}), "outside the vocabulary");
    refuse(mutate("badtok2.lgt", {{tokens_at + 4, le(int32_t(n_vocab + 100000))}}), "outside the vocabulary");
    refuse(mutate("ntok1.lgt", {{16, le(uint32_t(1))}, {24, le(uint64_t(1))}}), "corrupt");
    for (int shift : {29, 33, 60}) {
        const uint64_t n = uint64_t(1) << shift;
        refuse(mutate("huge" + std::to_string(shift) + ".lgt",
                      {{16, le(uint32_t(std::min<uint64_t>(n / 64, ~0u)))}, {24, le(n)}}),
               "corrupt");
    }
    refuse(mutate("half.lgt", {{20, le(uint32_t(32))}}), "made with --ppl-convention second-half");
    // Rows no writer makes: NaN scale, a top above 0, a positive or contradicted next-token
    // log-probability, a row without a top entry.
    refuse(mutate("nan.lgt", {{rows_at, le(std::nanf(""))}}), "non-finite");
    refuse(mutate("pos.lgt", {{rows_at + row_bytes + 4, le(1.0f)}}), "above 0");
    refuse(mutate("next.lgt", {{rows_at + 2 * row_bytes + 8, le(0.5f)}}), "above 0");
    refuse(mutate("contra.lgt", {{rows_at + 8, le(-1000.0f)}}), "contradicts");
    refuse(mutate("notop.lgt", {{rows_at + 12, std::vector<uint8_t>(2 * n_vocab, 0)}}), "no top entry");
}

// ---- what PPL means, and how the table names things ---------------------------------------------

TEST(EvalTable, SecondHalfConventionScoresWhatLlamaPerplexityScores) {
    const Models m    = make_models();
    const auto   half = test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", k_text, "-c", "64",
                                        "--ppl-convention", "second-half", "--base-logits", m.dir + "/half.lgt", "-o",
                                        m.dir + "/half.json", "--no-progress"});
    ASSERT_EQ(half.exit_code, 0) << half.err;
    EXPECT_NE(half.out.find("as llama-perplexity (--ppl-convention second-half)"), std::string::npos) << half.out;
    const auto all = test::run_reap(
        {"eval", "-m", m.base, "--data", k_text, "-c", "64", "-o", m.dir + "/all.json", "--no-progress"});
    ASSERT_EQ(all.exit_code, 0) << all.err;
    const json h = json::parse(test::read_bytes(m.dir + "/half.json")),
               a = json::parse(test::read_bytes(m.dir + "/all.json"));
    EXPECT_EQ(h[0]["ppl_convention"], "second-half");
    // positions 32..62 of each full window of 64 instead of 0..62 of every window (llama-perplexity
    // scores no partial last window)
    const uint64_t n_all = a[0]["tokens_scored"], n_half = h[0]["tokens_scored"];
    EXPECT_EQ(n_half % 31, 0u);
    EXPECT_GE(n_half * 2, n_all - 2 * 64);
    EXPECT_LT(n_half * 2, n_all);
    EXPECT_NE(h[0]["ppl"], a[0]["ppl"]);
    // the file made for one convention is refused under the other
    const auto mixed = test::run_reap({"eval", "--pruned", m.pruned, "--data", k_text, "-c", "64", "--base-logits",
                                       m.dir + "/half.lgt", "--no-progress"});
    EXPECT_EQ(mixed.exit_code, 1);
    EXPECT_NE(mixed.err.find("made with --ppl-convention second-half, this run uses all"), std::string::npos)
        << mixed.err;
    // one short window: nothing in its second half to score
    const std::string tiny = m.dir + "/tiny.txt";
    std::ofstream(tiny) << "A few words.\n";
    const auto short_text = test::run_reap(
        {"eval", "-m", m.base, "--data", tiny, "-c", "64", "--ppl-convention", "second-half", "--no-progress"});
    EXPECT_EQ(short_text.exit_code, 1);
    EXPECT_NE(short_text.err.find("too little text to score"), std::string::npos) << short_text.err;
#ifdef REAP_LLAMA_PERPLEXITY
    // llama-perplexity's own number on one window of 128 tokens (it wants 2 windows of text);
    // test_llama_perplexity checks every -c.
    const std::string text = m.dir + "/text3.txt";
    std::ofstream(text) << read_text(k_text) << read_text(k_text) << read_text(k_text);
    const auto theirs =
        test::run_llama_perplexity({"-m", m.base, "-f", text, "-c", "128", "-b", "128", "-t", "1", "--chunks", "1"});
    ASSERT_GT(theirs.ppl, 0) << theirs.run.err;
    const auto ours = test::run_reap({"eval", "-m", m.base, "--data", text, "-c", "128", "--chunks", "1",
                                      "--ppl-convention", "second-half", "-o", m.dir + "/one.json", "--no-progress"});
    ASSERT_EQ(ours.exit_code, 0) << ours.err;
    const double mine = json::parse(test::read_bytes(m.dir + "/one.json"))[0]["ppl"];
    EXPECT_NEAR(mine, theirs.ppl, 1e-3 * theirs.ppl);
#endif
}

TEST(EvalTable, ModelsSharingAFileNameAreToldApart) {
    EXPECT_EQ(unique_model_names({"/w/a/m.gguf", "/w/b/m.gguf", "p.gguf", "/w/a/m.gguf"}),
              (std::vector<std::string>{"a/m.gguf", "b/m.gguf", "p.gguf", "a/m.gguf"}));
    EXPECT_EQ(unique_model_names({"x/a/m.gguf", "y/a/m.gguf", "m.gguf"}),
              (std::vector<std::string>{"x/a/m.gguf", "y/a/m.gguf", "m.gguf"}));
    EXPECT_EQ(unique_model_names({"/q/m.gguf", "/q/m.gguf"}), (std::vector<std::string>{"m.gguf", "m.gguf"}));

    const Models m = make_models();
    std::filesystem::create_directories(m.dir + "/one");
    std::filesystem::create_directories(m.dir + "/two");
    std::filesystem::copy_file(m.pruned, m.dir + "/one/model.gguf");
    std::filesystem::copy_file(m.base, m.dir + "/two/model.gguf");
    const auto r = test::run_reap({"eval", "-m", m.dir + "/two/model.gguf", "--pruned", m.dir + "/one/model.gguf",
                                   "--data", k_text, "-c", "64", "-o", m.dir + "/t.json", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("two/model.gguf"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("one/model.gguf"), std::string::npos) << r.out;
    const json t = json::parse(test::read_bytes(m.dir + "/t.json"));
    EXPECT_EQ(t[0]["model"], "two/model.gguf");
    EXPECT_EQ(t[1]["model"], "one/model.gguf");
    EXPECT_EQ(t[1]["path"], m.dir + "/one/model.gguf");
}

// A model name with a quote and a comma reads back whole from the CSV (RFC 4180: quotes doubled).
TEST(EvalTable, CsvQuotesNamesAsRfc4180) {
    EvalRow base, odd;
    base.path             = "/w/base.gguf";
    odd.path              = "/w/we,ird\"name.gguf";
    const std::string csv = eval_csv({base, odd}, PplConvention::all);
    EXPECT_NE(csv.find("\n\"base.gguf\","), std::string::npos) << csv;
    EXPECT_NE(csv.find("\n\"we,ird\"\"name.gguf\","), std::string::npos) << csv;
}

TEST(EvalTable, OutputNeitherJsonNorCsvIsTheTextTable) {
    const Models m = make_models();
    const auto   r = test::run_reap({"eval", "-m", m.base, "--pruned", m.pruned, "--data", k_text, "-c", "64", "-o",
                                     m.dir + "/table.txt", "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string t = read_text(m.dir + "/table.txt");
    EXPECT_EQ(t, r.out);
    EXPECT_EQ(t.rfind("PPL, KL and top-1", 0), 0u) << t;
    EXPECT_EQ(t.find('{'), std::string::npos) << t;
}

}  // namespace
