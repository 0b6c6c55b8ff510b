// The expert-output norms computed on the tensor's device (profile/device_norms.h) equal the host
// computation: directly on CPU-backend tensors (contiguous and strided, with the edge cases of
// reap-renorm and ties in the maximum), and through whole profiles with REAP_DEVICE_NORMS=always
// (the CPU backend runs the device graph) against the host path. The --rpc case, where the
// device path is the default, is in test_llama_flags (RpcServers).
#include "core/error.h"
#include "profile/device_norms.h"
#include "profile/expert_norms.h"
#include "profile/profiler.h"
#include "support.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

using namespace reap;

namespace {

const std::string k_sample = std::string(REAP_SOURCE_DIR) + "/data/calibration/sample.jsonl";

// An F32 [E, U, T] tensor in a CPU backend buffer, rows `pad` floats longer than E (strided).
struct CpuTensor {
    ggml_context *        ctx = nullptr;
    ggml_backend_buffer_t buf = nullptr;
    ggml_tensor *         t   = nullptr;
    CpuTensor(int64_t E, int64_t U, int64_t T, int64_t pad, const std::vector<float> & values) {
        ggml_init_params p{ggml_tensor_overhead() * 4, nullptr, true};
        ctx                     = ggml_init(p);
        ggml_tensor *      full = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, E + pad, U, T);
        ggml_backend_dev_t cpu  = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        buf                     = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(cpu));
        std::vector<float> padded(size_t((E + pad) * U * T), 1e30f);  // padding must never be read
        for (int64_t r = 0; r < U * T; r++)
            for (int64_t i = 0; i < E; i++)
                padded[size_t(r * (E + pad) + i)] = values[size_t(r * E + i)];
        ggml_backend_tensor_set(full, padded.data(), 0, ggml_nbytes(full));
        t = pad == 0 ? full : ggml_view_3d(ctx, full, E, U, T, full->nb[1], full->nb[2], 0);
        if (pad != 0) ggml_backend_view_init(t);
        ggml_set_name(t, "ffn_moe_down-0");
    }
    ~CpuTensor() {
        ggml_backend_buffer_free(buf);
        ggml_free(ctx);
    }
};

// `f`: the [E, U * T] values, for the channel of the maximum: on an exact tie a backend's argmax
// may pick another of the tied channels (ggml-cpu takes the last, the host the first).
void expect_equal_norms(const ExpertNorms & host, const ExpertNorms & dev, const std::vector<float> & f, int64_t E) {
    ASSERT_EQ(host.norm.size(), dev.norm.size());
    ASSERT_EQ(host.renorm.size(), dev.renorm.size());
    for (size_t i = 0; i < host.norm.size(); i++) {
        EXPECT_NEAR(dev.norm[i], host.norm[i], 1e-5 * host.norm[i] + 1e-6) << i;
        EXPECT_EQ(dev.peak[i], host.peak[i]) << i;  // |f_i| of a float is exact
        EXPECT_EQ(std::fabs(f[i * size_t(E) + size_t(dev.peak_at[i])]), host.peak[i]) << i;
        if (!host.renorm.empty()) {
            EXPECT_NEAR(dev.renorm[i], host.renorm[i], 1e-4 * host.renorm[i] + 1e-6) << i;
        }
    }
}

TEST(DeviceNorms, EqualTheHostComputationOnTheCpuBackend) {
    const int64_t                   E = 67, U = 4, T = 6;
    std::mt19937                    rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float>              f(size_t(E * U * T));
    for (float & v : f)
        v = nd(rng);
    // Ties in |f|: the first channel wins on both sides; a row of zeros peaks at channel 0.
    f[size_t(3 * E + 10)] = 9.0f;
    f[size_t(3 * E + 20)] = -9.0f;
    for (int64_t i = 0; i < E; i++)
        f[size_t(5 * E + i)] = 0.0f;
    std::vector<float>                    gates(size_t(U * T));
    std::uniform_real_distribution<float> ud(0.05f, 1.0f);
    for (float & g : gates)
        g = ud(rng);
    gates[4] = 1.0f;  // token 1: one expert carries all the weight (ybar falls back to 0 for it)
    gates[5] = gates[6] = gates[7] = 0.0f;
    gates[8]                       = 0.97f;  // token 2: one gate dominates (the renorm delta is small for the others)
    gates[9] = gates[10] = gates[11] = 0.01f;

    for (const int64_t pad : {0, 5}) {
        CpuTensor   x(E, U, T, pad, f);
        DeviceNorms dev;
        ASSERT_TRUE(DeviceNorms::has_device(x.t));
        for (const bool with_gates : {true, false}) {
            SCOPED_TRACE(testing::Message() << "pad " << pad << " gates " << with_gates);
            ExpertNorms   host, device;
            const float * g = with_gates ? gates.data() : nullptr;
            expert_norms_host(static_cast<const uint8_t *>(x.t->data), x.t->nb[1], x.t->nb[2], E, U, T, g, host);
            dev.compute(x.t, g, device);
            expect_equal_norms(host, device, f, E);
            EXPECT_EQ(host.peak_at[3], 10);
            EXPECT_TRUE(device.peak_at[3] == 10 || device.peak_at[3] == 20) << device.peak_at[3];
            EXPECT_EQ(device.peak[5], 0.0);
            size_t same_channel = 0;  // away from ties, the same channel
            for (size_t i = 0; i < host.peak_at.size(); i++)
                same_channel += host.peak_at[i] == device.peak_at[i];
            EXPECT_EQ(same_channel, host.peak_at.size() - 2);
        }
        // Only the results crossed: 3 floats and an index per (token, slot), not E floats.
        EXPECT_EQ(dev.bytes_read(), uint64_t((4 + 3) * U * T * 4));
    }
}

TEST(HostNorms, ThreadsGiveTheSameBitsAsOne) {
    const int64_t                   E = 33, U = 3, T = 41;
    std::mt19937                    rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float>              f(size_t(E * U * T)), gates(size_t(U * T));
    for (float & v : f)
        v = nd(rng);
    for (float & g : gates)
        g = std::fabs(nd(rng));
    ExpertNorms  one, three;
    const auto * d = reinterpret_cast<const uint8_t *>(f.data());
    expert_norms_host(d, E * 4, E * U * 4, E, U, T, gates.data(), one, 1);
    expert_norms_host(d, E * 4, E * U * 4, E, U, T, gates.data(), three, 3);
    EXPECT_EQ(one.norm, three.norm);
    EXPECT_EQ(one.renorm, three.renorm);
    EXPECT_EQ(one.peak, three.peak);
    EXPECT_EQ(one.peak_at, three.peak_at);
    EXPECT_GT(one.renorm[size_t(U * T - 1)], 0.0);  // the last chunk was computed
}

TEST(DeviceNorms, PlacementFromTheEnvironment) {
    unsetenv("REAP_DEVICE_NORMS");
    EXPECT_EQ(norms_placement_from_env(), NormsPlacement::automatic);
    setenv("REAP_DEVICE_NORMS", "always", 1);
    EXPECT_EQ(norms_placement_from_env(), NormsPlacement::always_device);
    setenv("REAP_DEVICE_NORMS", "off", 1);
    EXPECT_EQ(norms_placement_from_env(), NormsPlacement::off);
    setenv("REAP_DEVICE_NORMS", "gpu", 1);
    try {
        norms_placement_from_env();
        ADD_FAILURE() << "no error";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("REAP_DEVICE_NORMS=gpu: expected auto, always or off"), std::string::npos);
    }
    unsetenv("REAP_DEVICE_NORMS");
}

void expect_same_stats(const ExpertStats & a, const ExpertStats & b) {
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (const auto & [il, A] : a.layers) {
        const LayerStats & B = b.layers.at(il);
        ASSERT_TRUE(A.has_renorm() && B.has_renorm() && A.has_out_max() && B.has_out_max());
        EXPECT_EQ(A.total_tokens, B.total_tokens);
        EXPECT_EQ(A.count, B.count) << "layer " << il;  // the same routing: only the norms differ
        EXPECT_EQ(A.gate_sum, B.gate_sum) << "layer " << il;
        EXPECT_EQ(A.out_max, B.out_max) << "layer " << il;
        EXPECT_EQ(A.out_max_channel, B.out_max_channel) << "layer " << il;
        for (size_t j = 0; j < A.n_expert(); j++) {
            EXPECT_NEAR(A.ean_sum[j], B.ean_sum[j], 1e-5 * A.ean_sum[j] + 1e-9) << il << "/" << j;
            EXPECT_NEAR(A.reap_sum[j], B.reap_sum[j], 1e-5 * A.reap_sum[j] + 1e-9) << il << "/" << j;
            EXPECT_NEAR(A.renorm_sum[j], B.renorm_sum[j], 1e-4 * A.renorm_sum[j] + 1e-9) << il << "/" << j;
        }
    }
}

class ForcedDevicePath : public ::testing::TestWithParam<std::string> {};

// The same decode, the norms once on the host and once by the device graph on the CPU backend:
// llama4 gates the expert's input (no renorm inputs), gpt-oss adds an expert bias (_biased).
TEST_P(ForcedDevicePath, ProfileEqualsTheHostPath) {
    synth::Options o;
    o.arch    = GetParam();
    o.n_layer = o.arch == "llama4" ? 4 : 2;
    ProfileOptions p;
    p.model               = test::synth_model(o);
    p.data                = {k_sample};
    p.max_samples         = 12;
    p.n_threads           = 1;
    p.progress            = false;
    const std::string dir = test::tmp_dir();

    unsetenv("REAP_DEVICE_NORMS");
    p.output                 = dir + "/host.json";
    const ProfileResult host = run_profile(p);
    EXPECT_EQ(host.device_norms_bytes, 0u);

    setenv("REAP_DEVICE_NORMS", "always", 1);
    p.output                   = dir + "/device.json";
    const ProfileResult device = run_profile(p);
    unsetenv("REAP_DEVICE_NORMS");
    EXPECT_GT(device.device_norms_bytes, 0u);
    expect_same_stats(ExpertStats::load(dir + "/host.json"), ExpertStats::load(dir + "/device.json"));
}

INSTANTIATE_TEST_SUITE_P(Archs, ForcedDevicePath, ::testing::Values("qwen3moe", "gpt-oss", "llama4"),
                         [](const testing::TestParamInfo<std::string> & p) {
                             std::string n = p.param;
                             for (char & c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

}  // namespace
