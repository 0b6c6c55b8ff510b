// ExpertNorms (expert_norms.h) of an expert-output tensor that is not in host memory (a GPU's or
// an --rpc server's buffer), computed on that tensor's own device by a small ggml graph, so that
// 4 values per (token, slot) cross to the host instead of n_embd floats (~512x fewer bytes at
// Qwen3-30B's n_embd 2048). The backend is made from the tensor's buffer type's device through
// ggml-backend's public API, once per device.
//
// The graph reads the tensor in place: the eval callback runs while the scheduler's buffers hold
// it (ggml-backend.h: the node is passed "for observation" after its split was synchronized), and
// compute() returns only after its results were copied, before the scheduler goes on.
//
// REAP_DEVICE_NORMS selects where the norms are computed (see README, "Environment"):
//   auto    (default) on the device when the tensor is not in host memory, else on the host;
//   always  on the tensor's device also when it is in host memory (the CPU backend: the tests
//           check the device computation against the host one this way);
//   off     copy the whole tensor to the host, as before (bench/rpc_bench.sh's "before").
#pragma once

#include "profile/expert_norms.h"

#include <cstdint>
#include <map>
#include <vector>

struct ggml_tensor;
struct ggml_backend;
struct ggml_backend_device;
struct ggml_gallocr;

namespace reap {

enum class NormsPlacement { automatic, always_device, off };

// The device of t's buffer (memory the host can read is the CPU backend's); nullptr when t has
// no buffer or its buffer type names no device.
ggml_backend_device * buffer_device(const ggml_tensor * t);

// REAP_DEVICE_NORMS from the environment; a value other than auto/always/off is an error.
NormsPlacement norms_placement_from_env();

class DeviceNorms {
public:
    DeviceNorms() = default;
    ~DeviceNorms();
    DeviceNorms(const DeviceNorms &)             = delete;
    DeviceNorms & operator=(const DeviceNorms &) = delete;

    // Whether `t` has a device that can run the graph (false: read it on the host instead).
    static bool has_device(const ggml_tensor * t);

    // `t`: F32 [n_embd, n_used, n_tokens] with rows of contiguous floats; `gates` as in
    // expert_norms_host. Throws on a backend failure.
    void compute(ggml_tensor * t, const float * gates, ExpertNorms & out);

    uint64_t bytes_read() const { return bytes_read_; }  // results copied from the devices

private:
    struct Device {
        ggml_backend * backend = nullptr;
        ggml_gallocr * galloc  = nullptr;
    };
    Device & device_for(const ggml_tensor * t);

    std::map<ggml_backend_device *, Device> devices_;
    std::vector<uint8_t>                    graph_mem_;  // the graph's tensor headers (no data)
    std::vector<float>                      upload_, values_;
    std::vector<int32_t>                    argmax_;
    uint64_t                                bytes_read_ = 0;
};

}  // namespace reap
