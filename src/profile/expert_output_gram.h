// The gated expert-output Gram of one MoE layer over a sample of a micro-batch's tokens
// (`profile --merge-stats`, REAM's "expert outputs weighted by gate values"):
//   G[i][j] += Σ_{t sampled} g_i(t) g_j(t) <f_i(x_t), f_j(x_t)>
// with every expert run on every sampled token, routed or not: f_e(x) = down_e(silu(gate_e x) *
// up_e x) (+ the expert's biases where the model has them), g(t) the router's probabilities
// over all experts.
//
// It is a small ggml graph run on the expert tensors' own device (the CPU backend for memory
// the host can read), as device_norms.h does: the weights are used in place (the model's own
// tensors are operands of the graph; nothing of them is copied), the MoE input x is read in
// place through a tensor of our own over its bytes, and only E x E floats come back to the host.
// The graph (n = n_embd, S sampled tokens, E experts):
//   xs   get_rows(x, sampled)                              [n, 1, S]
//   a    mul_mat_id(gate|up|gate_up, xs, ids = 0..E-1)     [n_ff, E, S]  (+ add_id bias)
//   h    swiglu_split(gate, up)                            [n_ff, E, S]
//   F    mul_mat_id(down, h, ids)                          [n, E, S]     (+ add_id bias)
//   F'   F * g (g [1, E, S], broadcast over n)
//   G    mul_mat(A, A), A = F' permuted to [n, S, E] as [n*S, E]: Σ over channels and tokens
#pragma once

#include <cstdint>
#include <map>
#include <vector>

struct ggml_tensor;
struct ggml_backend;
struct ggml_backend_device;
struct ggml_gallocr;

namespace reap {

// The expert tensors of one MoE layer, as llama.cpp's graph multiplies them (src[0] of its
// MUL_MAT_ID nodes; src[1] of its ADD_ID nodes for biases). Either gate and up, or gate_up
// (gate in the first n_ff rows, up in the second, as llama.cpp splits it); biases optional.
struct ExpertFfnTensors {
    ggml_tensor * gate    = nullptr;                                                           // [n_embd, n_ff, E]
    ggml_tensor * up      = nullptr;                                                           // [n_embd, n_ff, E]
    ggml_tensor * gate_up = nullptr;                                                           // [n_embd, 2 n_ff, E]
    ggml_tensor * down    = nullptr;                                                           // [n_ff, n_embd, E]
    ggml_tensor * gate_b = nullptr, *up_b = nullptr, *gate_up_b = nullptr, *down_b = nullptr;  // [rows, E]
};

// Which of a micro-batch's n_tokens tokens are sampled, at most `n`: all of them when n_tokens
// <= n, else token floor((2k+1) n_tokens / 2n) for k = 0..n-1, the middles of n equal strata
// (deterministic, spread over the micro-batch, no two equal).
std::vector<int32_t> merge_sample_tokens(int64_t n_tokens, uint32_t n);

class ExpertOutputGram {
public:
    ExpertOutputGram() = default;
    ~ExpertOutputGram();
    ExpertOutputGram(const ExpertOutputGram &)             = delete;
    ExpertOutputGram & operator=(const ExpertOutputGram &) = delete;

    // Threads of the CPU backend (the decode's batch threads).
    void set_threads(int n) { n_threads_ = n > 0 ? n : 1; }

    // Adds to `gram` (E x E, row-major, E = the experts of w) the Gram above over the tokens
    // `tokens` (indices into x's tokens) of `x`, F32 [n_embd, 1, n_tokens] with contiguous rows,
    // with `gates` the router probabilities of those tokens, [tokens.size()][E] row-major.
    // x and the weights must be on one device. Throws a reap::Error on a shape, type or backend
    // problem.
    void accumulate(const ExpertFfnTensors & w, ggml_tensor * x, const std::vector<int32_t> & tokens,
                    const std::vector<float> & gates, std::vector<double> & gram);

    uint64_t bytes_read() const { return bytes_read_; }  // results copied from the devices

private:
    struct Device {
        ggml_backend * backend = nullptr;
        ggml_gallocr * galloc  = nullptr;
    };
    Device & device_for(ggml_backend_device * dev, const ggml_tensor * t);

    std::map<ggml_backend_device *, Device> devices_;
    std::vector<uint8_t>                    graph_mem_;
    std::vector<int32_t>                    ids_;
    std::vector<float>                      result_;
    uint64_t                                bytes_read_ = 0;
    int                                     n_threads_  = 1;
};

}  // namespace reap
