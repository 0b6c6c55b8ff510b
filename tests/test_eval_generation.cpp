// reap eval --prompts: the degeneration detector and the continuation scores on crafted token
// sequences, the prompts file's formats, and greedy generation on the committed trained model.
#include "core/error.h"
#include "core/text.h"
#include "eval/degeneration.h"
#include "eval/generation.h"
#include "eval/generation_score.h"
#include "support.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace reap;
using nlohmann::json;

namespace {

const std::string k_trained = std::string(REAP_SOURCE_DIR) + "/data/models/tiny-moe-q8_0.gguf";

std::vector<int32_t> distinct(size_t n, int32_t from = 100) {
    std::vector<int32_t> s;
    for (size_t i = 0; i < n; i++)
        s.push_back(from + int32_t(i));
    return s;
}

std::vector<int32_t> repeat(std::vector<int32_t> unit, size_t n) {
    std::vector<int32_t> s;
    while (s.size() < n)
        s.push_back(unit[s.size() % unit.size()]);
    return s;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t> & b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

TEST(Degeneration, LoopsInTheTailAreFoundAndTextIsNot) {
    EXPECT_EQ(loop_period(distinct(64)), 0u);                                 // no repetition at all
    EXPECT_EQ(loop_period(concat(distinct(32), repeat({7}, 32))), 1u);        // "the the the"
    EXPECT_EQ(loop_period(concat(distinct(20), repeat({1, 2, 3}, 44))), 3u);  // "}\n}\n" with period 3
    EXPECT_EQ(loop_period(repeat({1, 2, 3, 4, 5, 6, 7, 8}, 64)), 8u);         // a whole-line loop
    // a loop in the first half only: the text recovered
    EXPECT_EQ(loop_period(concat(repeat({1, 2}, 32), distinct(32))), 0u);
    // too short to call, however repetitive
    EXPECT_EQ(loop_period(repeat({5}, k_loop_min_tokens - 1)), 0u);
    EXPECT_EQ(loop_period(repeat({5}, k_loop_min_tokens)), 1u);
    // a period longer than half the tail is not a loop (the tail holds the n-gram less than twice):
    // 60 tokens, a tail of 30, a line of 15 tokens repeated loops, one of 16 does not
    EXPECT_EQ(loop_period(repeat(distinct(15), 60)), 15u);
    EXPECT_EQ(loop_period(repeat(distinct(16), 60)), 0u);
    // 90 % of the tail: one odd token (2 of the tail's 20 comparisons fail: 90 %) still loops, five do not
    auto one_off = concat(distinct(16), repeat({1, 2}, 24));  // the tail, 20..39, compares with 18..37
    one_off[30]  = 99;
    EXPECT_EQ(loop_period(one_off), 2u);
    auto four_off = one_off;
    for (size_t i : {24, 27, 33, 36})
        four_off[i] = 99;
    EXPECT_EQ(loop_period(four_off), 0u);
}

Continuation cont(std::vector<int32_t> t, bool ended = false) { return {std::move(t), ended}; }

TEST(GenerationScore, AgreementMatchRateDistinct2OnCraftedContinuations) {
    const std::vector<Continuation> base = {cont({1, 2, 3, 4}), cont({5, 6}, true)};
    const GenerationScore           self = score_continuations(base, base);
    EXPECT_EQ(self.agreement, 1.0);
    EXPECT_EQ(self.match_rate, 1.0);
    EXPECT_EQ(self.agreement_tokens, (4.0 + 3.0) / 2);  // the end counts as a token
    EXPECT_EQ(self.degeneration, 0.0);
    // bigrams (1,2) (2,3) (3,4) (5,6): all distinct
    EXPECT_EQ(self.distinct2, 1.0);

    // prompt 1: diverges at position 2, matches again at 3; prompt 2: does not stop where the base does
    const std::vector<Continuation> mine = {cont({1, 2, 9, 4}), cont({5, 6, 6})};
    const GenerationScore           s    = score_continuations(base, mine);
    EXPECT_DOUBLE_EQ(s.agreement, (2.0 / 4 + 2.0 / 3) / 2);
    EXPECT_DOUBLE_EQ(s.agreement_tokens, 2.0);
    EXPECT_DOUBLE_EQ(s.match_rate, (3.0 + 2.0) / (4 + 3));
    EXPECT_DOUBLE_EQ(s.distinct2, 5.0 / 5);  // (1,2) (2,9) (9,4) (5,6) (6,6)
    EXPECT_DOUBLE_EQ(distinct_bigrams({cont({1, 2, 1, 2, 1, 2})}), 2.0 / 5);
    EXPECT_EQ(distinct_bigrams({cont({1}), cont({}, true)}), 0.0);

    // degeneration: the share of continuations that loop
    const std::vector<Continuation> base4   = {cont(distinct(32)), cont(distinct(32)), cont(distinct(32)),
                                               cont(distinct(32))};
    const std::vector<Continuation> looping = {cont(repeat({3}, 32)), cont(distinct(32)), cont(distinct(32)),
                                               cont(concat(distinct(12), repeat({4, 5}, 20)))};
    EXPECT_DOUBLE_EQ(score_continuations(base4, looping).degeneration, 0.5);
    EXPECT_THROW(score_continuations(base4, base), Error);
}

TEST(GenerationScore, OneLineEscapesAndCutsOnCharacterBoundaries) {
    EXPECT_EQ(one_line("a\nb\tc\x01", 80, false), "a\\nb\\tc?");
    EXPECT_EQ(one_line("abcdef", 3, false), "abc...");
    EXPECT_EQ(one_line("abcdef", 3, true), "...def");
    EXPECT_EQ(one_line("x\xc3\xa9z", 2, true), "...z");  // not half of the é
    EXPECT_EQ(one_line("x\xc3\xa9z", 2, false), "x...");
}

TEST(GenerationText, ValidUtf8ReplacesWhatIsCutOrInvalid) {
    const std::string fffd = "\xEF\xBF\xBD";
    EXPECT_EQ(valid_utf8("plain ASCII\n"), "plain ASCII\n");
    EXPECT_EQ(valid_utf8("h\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E"),
              "h\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E");  // é € 𝄞
    // a character cut by the token limit: its first bytes are one U+FFFD
    EXPECT_EQ(valid_utf8("box \xE2\x94"), "box " + fffd);
    EXPECT_EQ(valid_utf8("\xF0\x9D\x84"), fffd);
    // a lone byte token, an overlong form, a surrogate, beyond U+10FFFF: one U+FFFD per maximal subpart
    EXPECT_EQ(valid_utf8("a\x80"
                         "b"),
              "a" + fffd + "b");
    EXPECT_EQ(valid_utf8("\xC0\xAF"), fffd + fffd);
    EXPECT_EQ(valid_utf8("\xED\xA0\x80"), fffd + fffd + fffd);
    EXPECT_EQ(valid_utf8("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);
    EXPECT_EQ(valid_utf8("\xE2\x28\xA1"), fffd + "(" + fffd);
    EXPECT_EQ(valid_utf8("\xE2\x82\xACx\xE2"), "\xE2\x82\xACx" + fffd);
    // what JSON takes
    EXPECT_NO_THROW((void) json(valid_utf8("\xE2\x94")).dump());
}

// ---- on the trained model ------------------------------------------------------------------------

struct LoadedModel {
    llama_model * model = nullptr;
    explicit LoadedModel(const std::string & path) {
        llama_backend_init();
        llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
        model = llama_model_load_from_file(path.c_str(), llama_model_default_params());
    }
    ~LoadedModel() { llama_model_free(model); }
};

std::string text_of(const llama_model * model, const std::vector<llama_token> & toks) {
    std::vector<char> buf(toks.size() * 32 + 16);
    const int32_t     n = llama_detokenize(llama_model_get_vocab(model), toks.data(), int32_t(toks.size()), buf.data(),
                                           int32_t(buf.size()), false, true);
    return n < 0 ? "" : std::string(buf.data(), size_t(n));
}

TEST(GenerationPrompts, EveryCalibrationFormatAndMessagesWithTheAssistantTurnOpen) {
    const std::string dir = test::tmp_dir();
    LoadedModel       m(k_trained);
    ASSERT_NE(m.model, nullptr);
    const json chat_line = {
        {"messages", {{{"role", "user"}, {"content", "Say hi"}}, {{"role", "assistant"}, {"content", "ANSWER 2"}}}}};
    {
        std::ofstream out(dir + "/p.jsonl");
        out << json{{"prompt", "int main(void)"}, {"response", "ANSWER 1"}}.dump() << "\n\n";
        out << json{{"text", "The quick brown fox"}}.dump() << "\n";
        out << chat_line.dump() << "\n";
    }
    GenerationOptions g;
    g.prompts       = dir + "/p.jsonl";
    g.chat_template = "chatml";
    const auto p    = load_prompts(m.model, g, 100);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(text_of(m.model, p[0].tokens), "int main(void)\n");  // the response is what comes next
    EXPECT_EQ(text_of(m.model, p[1].tokens), "The quick brown fox");
    const std::string chat = text_of(m.model, p[2].tokens);
    EXPECT_EQ(chat, "<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n");
    // a prompt longer than the room left for the continuation keeps its end
    const auto cut = load_prompts(m.model, g, 3);
    EXPECT_EQ(cut[1].tokens.size(), 3u);
    EXPECT_EQ(cut[1].tokens.back(), p[1].tokens.back());

    // plain text: one prompt per non-blank line
    std::ofstream(dir + "/p.txt") << "first line\n\n  \nsecond line\n";
    g.prompts        = dir + "/p.txt";
    const auto lines = load_prompts(m.model, g, 100);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(text_of(m.model, lines[1].tokens), "second line");

    // a malformed line names the file and the line
    std::ofstream(dir + "/bad.jsonl") << json{{"text", "fine"}}.dump() << "\n{not json\n";
    g.prompts = dir + "/bad.jsonl";
    try {
        load_prompts(m.model, g, 100);
        ADD_FAILURE() << "accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
    }
    // messages without a template: the trained model has none
    std::ofstream(dir + "/chat.jsonl") << chat_line.dump() << "\n";
    g.prompts       = dir + "/chat.jsonl";
    g.chat_template = "";
    EXPECT_THROW(load_prompts(m.model, g, 100), Error);
}

// Prompts from the held-out code and prose: the start of each paragraph, at most 160 characters.
std::string write_prompts(const std::string & dir) {
    const std::string path = dir + "/prompts.jsonl";
    std::ofstream     out(path);
    for (const char * domain : {"code", "prose"}) {
        const std::string text =
            test::read_text(std::string(REAP_SOURCE_DIR) + "/data/text/" + domain + "-heldout.txt");
        size_t at = 0;
        for (int k = 0; k < 4 && at < text.size(); k++) {
            const size_t cut = text.rfind('\n', at + 160);
            out << json{{"text", text.substr(at, cut > at ? cut - at + 1 : 160)}}.dump() << "\n";
            at = text.find("\n\n", at + 2000);
            if (at == std::string::npos) break;
            at += 2;
        }
    }
    return path;
}

TEST(Generation, DeterministicBaseAgreesWithItselfPrunedAgreesLess) {
    const std::string dir = test::tmp_dir();
    const auto        p   = test::run_reap({"profile", "-m", k_trained, "--data",
                                            std::string(REAP_SOURCE_DIR) + "/data/calibration/code.jsonl", "--max-samples", "24",
                                            "-t", "1", "-o", dir + "/s.json", "--no-progress"});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    const std::string pruned = dir + "/half.gguf";
    const auto        q      = test::run_reap(
                    {"prune", "-m", k_trained, "--stats", dir + "/s.json", "--keep-ratio", "0.5", "-o", pruned, "--no-progress"});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const std::string prompts = write_prompts(dir);
    const std::string text    = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";
    auto              run     = [&](const std::string & out) {
        return test::run_reap({"eval", "-m", k_trained, "--pruned", k_trained, pruned, "--data", text, "-c", "128",
                               "--prompts", prompts, "--gen-tokens", "40", "-t", "1", "-o", out, "--no-progress"});
    };
    const auto r = run(dir + "/a.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json a = json::parse(test::read_bytes(dir + "/a.json"));
    ASSERT_EQ(a.size(), 3u);
    for (int i : {0, 1}) {  // the base, and the base again as a "pruned" model
        const json & g = a[i]["generation"];
        EXPECT_EQ(g["agreement"], 1.0) << g.dump();
        EXPECT_EQ(g["match_rate"], 1.0);
        EXPECT_EQ(g["prompts"], 8);
        EXPECT_EQ(g["gen_tokens"], 40);
    }
    EXPECT_EQ(a[0]["generation"]["examples"], a[1]["generation"]["examples"]);
    const json & half = a[2]["generation"];
    EXPECT_LT(half["agreement"].get<double>(), 1.0) << half.dump();
    EXPECT_LT(half["match_rate"].get<double>(), 1.0);
    EXPECT_GT(half["distinct2"].get<double>(), 0.0);
    EXPECT_NE(r.out.find("== generation: 8 prompts, greedy, up to 40 tokens"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("prompt 1: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  half.gguf"), std::string::npos) << r.out;

    // The same run again, to CSV: the same numbers and the same continuations.
    const auto again = run(dir + "/b.csv");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const std::string csv = test::read_text(dir + "/b.csv");
    EXPECT_NE(csv.find(",gen_agreement,gen_agreement_tokens,gen_match_rate,gen_degeneration,gen_distinct2\n"),
              std::string::npos)
        << csv;
    EXPECT_NE(csv.find(strfmt(",%.6f,%.4f,%.6f,%.6f,%.6f\n", half["agreement"].get<double>(),
                              half["agreement_tokens"].get<double>(), half["match_rate"].get<double>(),
                              half["degeneration"].get<double>(), half["distinct2"].get<double>())),
              std::string::npos)
        << csv;
    const size_t at = r.out.find("== generation");
    EXPECT_EQ(again.out.substr(again.out.find("== generation")), r.out.substr(at));
}

TEST(Generation, RefusesTokensBeyondTheContextAndBadPrompts) {
    const std::string dir  = test::tmp_dir();
    const std::string text = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";
    std::ofstream(dir + "/p.txt") << "hello\n";
    const auto big = test::run_reap({"eval", "-m", k_trained, "--data", text, "-c", "64", "--prompts", dir + "/p.txt",
                                     "--gen-tokens", "64", "--no-progress"});
    EXPECT_EQ(big.exit_code, 2) << big.err;
    EXPECT_NE(big.err.find("--gen-tokens"), std::string::npos) << big.err;
    std::ofstream(dir + "/bad.jsonl") << R"({"text": "ok"})"
                                      << "\n"
                                      << R"({"response": "no prompt"})"
                                      << "\n";
    const auto bad = test::run_reap({"eval", "-m", k_trained, "--data", text, "-c", "64", "--prompts",
                                     dir + "/bad.jsonl", "--gen-tokens", "8", "--no-progress"});
    EXPECT_EQ(bad.exit_code, 1) << bad.err;
    EXPECT_NE(bad.err.find("bad.jsonl:2"), std::string::npos) << bad.err;
    // the prompts are an input: no table over them
    const auto over = test::run_reap({"eval", "-m", k_trained, "--data", text, "-c", "64", "--prompts", dir + "/p.txt",
                                      "--gen-tokens", "8", "-o", dir + "/p.txt", "--no-progress"});
    EXPECT_EQ(over.exit_code, 1) << over.err;
    EXPECT_NE(over.err.find("is also an input"), std::string::npos) << over.err;
    EXPECT_EQ(test::read_text(dir + "/p.txt"), "hello\n");
}

// The committed model's vocabulary is byte-level BPE: after "€ € € ..." it continues "\n" and
// spaces, then "│" (U+2502) as two tokens, so that --gen-tokens 3 ends inside the character.
// Every output keeps what came before and is valid UTF-8 (it was exit 70 and no JSON, issue 29).
std::string write_cut_prompt(const std::string & dir) {
    std::ofstream(dir + "/cut.jsonl")
        << json{{"text", "\xE2\x82\xAC \xE2\x82\xAC \xE2\x82\xAC \xE2\x82\xAC \xE2\x82\xAC \xE2\x82\xAC \xE2\x82\xAC"}}
               .dump()
        << "\n";
    return dir + "/cut.jsonl";
}

bool is_valid_utf8(const std::string & s) { return valid_utf8(s) == s; }

TEST(Generation, ContinuationCutInsideACharacterIsValidUtf8InEveryEvalOutput) {
    const std::string dir     = test::tmp_dir();
    const std::string prompts = write_cut_prompt(dir);
    auto              run     = [&](const std::string & out, const char * n) {
        return test::run_reap({"eval",
                               "-m",
                               k_trained,
                               "--pruned",
                               k_trained,
                               "--data",
                               std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt",
                               "-c",
                               "64",
                               "--chunks",
                               "1",
                               "--prompts",
                               prompts,
                               "--gen-tokens",
                               n,
                               "-t",
                               "1",
                               "-o",
                               out,
                               "--no-progress"});
    };
    const auto whole = run(dir + "/whole.json", "4");
    ASSERT_EQ(whole.exit_code, 0) << whole.err;
    const std::string box = "\xE2\x94\x82";  // the character the fourth token completes
    const std::string full =
        json::parse(test::read_text(dir + "/whole.json")).at(0)["generation"]["examples"][0]["continuation"];
    ASSERT_EQ(full.substr(full.size() - box.size()), box) << full;

    for (const char * ext : {".json", ".csv", ".txt"}) {
        const std::string out = dir + "/cut" + ext;
        const auto        r   = run(out, "3");
        ASSERT_EQ(r.exit_code, 0) << ext << ": " << r.err;
        EXPECT_TRUE(is_valid_utf8(r.out)) << r.out;
        const std::string written = test::read_text(out);
        EXPECT_TRUE(is_valid_utf8(written)) << ext << ": " << written;
        if (std::string(ext) == ".json") {
            const json ex = json::parse(written)[1]["generation"]["examples"][0];
            EXPECT_EQ(ex["continuation"], full.substr(0, full.size() - box.size()) + "\xEF\xBF\xBD");
        } else if (std::string(ext) == ".csv") {
            EXPECT_NE(written.find("gen_agreement"), std::string::npos) << written;
        } else {  // the table shows the cut character as U+FFFD, not half of its bytes
            EXPECT_NE(written.find("| \\n       \xEF\xBF\xBD\n"), std::string::npos) << written;
        }
    }
}

// The same cut through the sweep: sweep.json and sweep.html are valid UTF-8.
TEST(Generation, ContinuationCutInsideACharacterIsValidUtf8InTheSweep) {
    const std::string dir = test::tmp_dir();
    const auto        r   = test::run_reap({"sweep",
                                            "-m",
                                            k_trained,
                                            "--calib",
                                            std::string(REAP_SOURCE_DIR) + "/data/calibration/code.jsonl",
                                            "--max-samples",
                                            "8",
                                            "--data",
                                            std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt",
                                            "-c",
                                            "64",
                                            "--chunks",
                                            "1",
                                            "--ratios",
                                            "0.25",
                                            "--criteria",
                                            "reap",
                                            "--prompts",
                                            write_cut_prompt(dir),
                                            "--gen-tokens",
                                            "3",
                                            "-t",
                                            "1",
                                            "--no-progress",
                                            "-o",
                                            dir + "/sweep"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string report = test::read_text(dir + "/sweep/sweep.json");
    ASSERT_TRUE(is_valid_utf8(report));
    const json ex = json::parse(report)["base"]["generation"]["examples"][0];
    EXPECT_EQ(ex["continuation"].get<std::string>().substr(ex["continuation"].get<std::string>().size() - 3),
              "\xEF\xBF\xBD")
        << ex.dump();
    const std::string html = test::read_text(dir + "/sweep/sweep.html");
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_TRUE(is_valid_utf8(html));
}

}  // namespace
