#include "support_models.h"

#include "support.h"

#include "core/log.h"

#include <gtest/gtest.h>

namespace reap::test {

const std::string k_calibration = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

int fewest_layers(const std::string & arch) {
    if (arch == "nemotron_h_moe") return 6;
    if (arch == "deepseek2") return 3;
    return 2;
}

ProfileOptions profile_options(const std::string & model, const std::string & out) {
    ProfileOptions p;
    p.model     = model;
    p.data      = {k_calibration};
    p.output    = out;
    p.progress  = false;
    p.n_threads = 1;
    return p;
}

std::string profile(const std::string & model, const std::string & out, int max_samples) {
    ProfileOptions p = profile_options(model, out);
    p.max_samples    = max_samples;
    log_init(LogLevel::error);  // llama.cpp's loading chatter
    run_profile(p);
    return out;
}

HalfPruned profile_and_halve(const std::string & model, const std::string & dir, int max_samples) {
    HalfPruned h{dir + "/s.json", dir + "/pruned.gguf"};
    const auto p = run_reap({"profile", "-m", model, "--data", k_calibration, "--max-samples",
                             std::to_string(max_samples), "-o", h.stats, "--no-progress"});
    EXPECT_EQ(p.exit_code, 0) << p.err;
    const auto q =
        run_reap({"prune", "-m", model, "--stats", h.stats, "--keep-ratio", "0.5", "-o", h.pruned, "--no-progress"});
    EXPECT_EQ(q.exit_code, 0) << q.err;
    return h;
}

}  // namespace reap::test
