// -c of profile and eval (llama/context_size.h): by default min(512, the model's trained
// context), 0 the trained context as in llama.cpp, and an explicit value beyond the trained
// context warned about once (issue 21: the trained demo model has 256 tokens, the default was 512).
#include "core/error.h"
#include "llama/context_size.h"
#include "support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_text  = REAP_SOURCE_DIR "/data/text/sample.txt";
const std::string k_calib = REAP_SOURCE_DIR "/data/calibration/sample.jsonl";

std::string model_trained_on(int n_ctx_train) {
    synth::Options o;
    o.n_layer     = 2;
    o.n_ctx_train = n_ctx_train;
    return test::synth_model(o);
}

size_t count(const std::string & s, const std::string & what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
        n++;
    return n;
}

TEST(ContextSize, DefaultIsAtMostTheTrainedContext) {
    const std::string short_model = model_trained_on(64), long_model = model_trained_on(4096);
    EXPECT_EQ(trained_context(short_model), 64u);
    EXPECT_EQ(resolve_ctx_size(k_ctx_size_not_given, short_model), 64);
    EXPECT_EQ(resolve_ctx_size(k_ctx_size_not_given, long_model), 512);
    EXPECT_EQ(resolve_ctx_size(0, long_model), 4096);  // llama.cpp's -c 0
    EXPECT_EQ(resolve_ctx_size(48, short_model), 48);
    EXPECT_EQ(resolve_ctx_size(128, short_model), 128);  // allowed, with a warning
    EXPECT_THROW(resolve_ctx_size(-5, short_model), UsageError);
}

TEST(ContextSize, EvalDefaultsToTheTrainedContextAndWarnsOnceBeyondIt) {
    const std::string dir = test::tmp_dir(), model = model_trained_on(64);
    auto              eval = [&](const std::vector<std::string> & extra, const std::string & table) {
        std::vector<std::string> a = {
            "eval", "-m", model, "--pruned", model, model, "-f", k_text, "--no-progress", "-o", dir + "/" + table};
        a.insert(a.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(a);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return std::make_pair(r, json::parse(test::read_bytes(dir + "/" + table)));
    };
    const auto [plain, by_default] = eval({}, "default.json");
    const auto [c64, explicit_64]  = eval({"-c", "64"}, "c64.json");
    EXPECT_EQ(by_default[0]["ppl"], explicit_64[0]["ppl"]);
    EXPECT_EQ(by_default[0]["tokens_scored"], explicit_64[0]["tokens_scored"]);
    EXPECT_EQ(count(plain.err, "warning"), 0u) << plain.err;
    EXPECT_EQ(count(c64.err, "warning"), 0u) << c64.err;
    // three models at -c 128, one warning
    const auto [c128, beyond] = eval({"-c", "128"}, "c128.json");
    EXPECT_EQ(count(c128.err, "-c 128 exceeds the 64 tokens"), 1u) << c128.err;
    EXPECT_NE(beyond[0]["ppl"], by_default[0]["ppl"]);
}

TEST(ContextSize, ProfileDefaultsToTheTrainedContextAndWarnsOnceBeyondIt) {
    const std::string dir = test::tmp_dir(), model = model_trained_on(64);
    auto              profile = [&](const std::vector<std::string> & extra) {
        std::vector<std::string> a = {"profile",       "-m", model, "--data",        k_calib,
                                      "--max-samples", "4",  "-o",  dir + "/s.json", "--no-progress"};
        a.insert(a.end(), extra.begin(), extra.end());
        const auto r = test::run_reap(a);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return r;
    };
    const auto plain = profile({});
    EXPECT_NE(plain.out.find("windows of at most 64 tokens"), std::string::npos) << plain.out;
    EXPECT_EQ(count(plain.err, "warning"), 0u) << plain.err;
    EXPECT_EQ(json::parse(test::read_bytes(dir + "/s.json"))["_meta"]["options"]["ctx_size"], 64);
    const auto beyond = profile({"-c", "96"});
    EXPECT_NE(beyond.out.find("windows of at most 96 tokens"), std::string::npos) << beyond.out;
    EXPECT_EQ(count(beyond.err, "-c 96 exceeds the 64 tokens"), 1u) << beyond.err;
}

}  // namespace
