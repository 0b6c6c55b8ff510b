// One owner for "size after pruning" (issue 22): for every architecture synth makes, as a GGUF
// and as a Hugging Face folder in each expert layout transformers saves it in, the sizes
// `reap inspect` reports for pruning 25, 50 and 75 % of the experts are what `reap prune
// --dry-run` reports for the same plans, and what the written weight files hold, byte for byte
// (the reap.prune.* keys, split and header padding included).
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "model/open_model.h"
#include "support.h"
#include "synth/synth.h"
#include "synth/synth_hf.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace reap;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Bytes of the weight files of a pruned output: the GGUF, or an HF folder's safetensors shards
// (config.json, the index and reap_prune.json are not weights).
uint64_t weight_bytes(const std::string & out) {
    if (!fs::is_directory(out)) return fs::file_size(out);
    uint64_t n = 0;
    for (const auto & e : fs::directory_iterator(out))
        if (e.path().extension() == ".safetensors") n += fs::file_size(e.path());
    return n;
}

// inspect's sizes == prune --dry-run's == the written files', for the model at `model`.
void expect_sizes_agree(const std::string & model, const std::string & dir) {
    SCOPED_TRACE(model);
    const auto r = test::run_reap({"inspect", "--json", model});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json report = json::parse(r.out);
    int        sized  = 0;
    for (const auto & s : report["pruned_sizes"]) {
        if (s["file_size"].is_null()) continue;  // not possible on this model: said why, nothing to compare
        const uint32_t    kept = s["kept_experts"].get<uint32_t>();
        const std::string tag  = std::to_string(kept);
        SCOPED_TRACE("keeping " + tag);
        // The plan inspect sizes with, saved: prune takes it with --plan.
        const std::string plan = dir + "/plan-" + tag + ".json";
        write_file_atomic(plan, uniform_plan(open_model(model)->shape(), kept).to_json().dump(1));
        const std::string report_path = dir + "/dry-" + tag + ".json";
        const auto dry = test::run_reap({"prune", "-m", model, "--plan", plan, "--dry-run", "--plan-out", report_path});
        ASSERT_EQ(dry.exit_code, 0) << dry.err;
        const json planned = json::parse(test::read_text(report_path));
        EXPECT_EQ(planned["output_size"].get<uint64_t>(), s["file_size"].get<uint64_t>()) << "dry run vs inspect";
        EXPECT_EQ(planned["original_size"].get<uint64_t>(), report["file_size"].get<uint64_t>());

        const std::string out   = dir + "/out-" + tag + (fs::is_directory(model) ? "" : ".gguf");
        const auto        wrote = test::run_reap({"prune", "-m", model, "--plan", plan, "-o", out});
        ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
        EXPECT_EQ(weight_bytes(out), s["file_size"].get<uint64_t>()) << "written files vs inspect";
        fs::remove_all(out);
        sized++;
    }
    EXPECT_GT(sized, 0) << "no pruning of 25/50/75 % is possible: nothing compared";
}

class ModelSizes : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() { log_init(LogLevel::error); }
};

TEST_P(ModelSizes, InspectDryRunAndWrittenFilesAgree) {
    const std::string arch = GetParam();
    const std::string dir  = test::tmp_dir();
    synth::Options    o;
    o.arch                 = arch;
    o.n_ff                 = 32;  // tiny: the sizes, not the weights, are under test
    const std::string gguf = dir + "/" + arch + ".gguf";
    synth::write_model(o, gguf);
    expect_sizes_agree(gguf, dir);
    for (const auto layout : {synth::HfExperts::per_expert, synth::HfExperts::fused}) {
        const std::string hf = dir + "/hf-" + (layout == synth::HfExperts::fused ? "fused" : "per-expert");
        synth::HfOptions  ho;
        ho.experts = layout;
        // Per-expert folders in shards (an index, one header padded per shard), fused ones whole.
        if (layout == synth::HfExperts::per_expert) ho.shard_max_bytes = 256 << 10;
        try {
            synth::check_hf_request(arch, gguf, hf, ho);
        } catch (const UsageError &) {
            continue;  // no transformers config for the architecture, or not saved in this layout
        }
        synth::write_hf(gguf, hf, ho);
        expect_sizes_agree(hf, dir);
    }
}

INSTANTIATE_TEST_SUITE_P(AllArchs, ModelSizes, ::testing::ValuesIn(synth::all_architectures()),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             for (char & c : n)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return n;
                         });

}  // namespace
