// Fault injection on every write the commands make: a full filesystem and a read-only output
// folder (real ones: a small tmpfs, remounted read-only). Each run must fail with one line and
// exit 1, leave nothing under the final name that was not there, leave no temporary behind, and
// leave an earlier file of the same name byte for byte as it was.
#include "support.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace reap;
namespace fs = std::filesystem;

namespace {

const std::string k_calib = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";
const std::string k_text  = std::string(REAP_SOURCE_DIR) + "/data/text/sample.txt";

enum class Fault { full, read_only };

// A tmpfs of 256 KiB mounted at <tmp>/mnt, holding `previous` under `name`, then filled to the
// last byte (full) or remounted read-only. Unmounted on destruction.
class FaultyDir {
public:
    FaultyDir(const std::string & root, Fault fault, const std::string & name, const std::string & previous)
        : dir_(root + "/mnt") {
        fs::create_directories(dir_);
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=256k") != 0) {
            return;  // not root, or no mount namespace rights: the test skips
        }
        mounted_ = true;
        std::ofstream(dir_ + "/" + name, std::ios::binary) << previous;
        if (fault == Fault::full) {
            std::ofstream     filler(dir_ + "/filler", std::ios::binary);
            const std::string block(4096, 'x');
            while (filler.write(block.data(), block.size())) {}
            filler.clear();
            for (int i = 0; i < 4096 && filler.write("x", 1); i++) {
                filler.flush();
            }
        } else {
            mounted_ro_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=256k") == 0;
        }
    }
    ~FaultyDir() {
        if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    bool                usable(Fault f) const { return mounted_ && (f == Fault::full || mounted_ro_); }
    const std::string & path() const { return dir_; }

    // Every file in the folder except the filler, with its bytes.
    std::map<std::string, std::string> files() const {
        std::map<std::string, std::string> out;
        for (const auto & e : fs::directory_iterator(dir_)) {
            const std::string n = e.path().filename();
            if (n == "filler") continue;
            std::ifstream in(e.path(), std::ios::binary);
            out[n] = std::string(std::istreambuf_iterator<char>(in), {});
        }
        return out;
    }

private:
    std::string dir_;
    bool        mounted_ = false, mounted_ro_ = false;
};

struct Case {
    const char *             what;
    std::string              out_name;  // the file the command writes in the faulty folder
    std::vector<std::string> args;      // "@" stands for the faulty folder
};

class WriteFaults : public ::testing::TestWithParam<Fault> {};

TEST_P(WriteFaults, OneLineExitOneNothingHalfWrittenPreviousIntact) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
    synth::Options o;
    o.n_layer                 = 2;
    const std::string model   = test::synth_model(o);
    const std::string dir     = test::tmp_dir();
    const std::string stats_a = dir + "/a.json", stats_b = dir + "/b.json";
    for (const auto & s : {stats_a, stats_b}) {
        const auto r =
            test::run_reap({"profile", "-m", model, "--data", k_calib, "--max-samples", "4", "-o", s, "--no-progress"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const std::vector<Case> cases = {
        {"profile -o",
         "stats.json",
         {"profile", "-m", model, "--data", k_calib, "--max-samples", "4", "-o", "@/stats.json", "--no-progress"}},
        {"profile checkpoint",
         "ckpt.json",
         {"profile", "-m", model, "--data", k_calib, "--max-samples", "6", "--save-every", "1", "-o", "@/ckpt.json",
          "--no-progress"}},
        {"eval -o",
         "table.json",
         {"eval", "-m", model, "--pruned", model, "--data", k_text, "-c", "64", "-o", "@/table.json", "--no-progress"}},
        {"eval --base-logits",
         "base.lgt",
         {"eval", "-m", model, "--pruned", model, "--data", k_text, "-c", "64", "--base-logits", "@/base.lgt",
          "--no-progress"}},
        {"report -o", "report.html", {"report", stats_a, "-o", "@/report.html"}},
        {"merge -o", "merged.json", {"merge", stats_a, stats_b, "-o", "@/merged.json"}},
    };
    for (const auto & c : cases) {
        SCOPED_TRACE(c.what);
        const std::string previous = std::string("an earlier ") + c.what + " output\n";
        // eval reads an existing base-logits file instead of writing it: no earlier file there.
        const bool      keep_previous = c.out_name != "base.lgt";
        const FaultyDir faulty(dir + "/" + c.out_name, GetParam(), keep_previous ? c.out_name : ".keep",
                               keep_previous ? previous : "");
        if (!faulty.usable(GetParam())) GTEST_SKIP() << "cannot mount a tmpfs here";
        const auto before = faulty.files();
        auto       args   = c.args;
        for (auto & a : args) {
            if (a[0] == '@') a = faulty.path() + a.substr(1);
        }
        const auto r = test::run_reap(args);
        EXPECT_EQ(r.signal, 0) << r.err;
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(r.err.rfind("reap: error: ", 0), 0u) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(faulty.files(), before) << "a file appeared, vanished or changed in the faulty folder";
    }
}

INSTANTIATE_TEST_SUITE_P(Faults, WriteFaults, ::testing::Values(Fault::full, Fault::read_only),
                         [](const auto & param_info) {
                             return param_info.param == Fault::full ? "full" : "read_only";
                         });

}  // namespace
