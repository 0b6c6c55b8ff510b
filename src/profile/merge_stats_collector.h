// `reap profile --merge-stats N`: the two E x E similarity sums that expert merging (REAM,
// M-SMoE) needs, collected from the profile's eval callback (LayerStats::router_gram,
// output_gram; what each is: stats/expert_stats.h). Per MoE layer it requests three nodes more
// than a plain profile:
//   "ffn_moe_logits-<il>"   the router logits [E, T]: their Gram over every token, on the host;
//   "ffn_moe_probs-<il>"    the router probabilities [E, T]: the gates g of the sampled tokens;
//   "ffn_moe_up-<il>" (or "ffn_moe_gate_up-<il>" when gate and up are one tensor), the MUL_MAT_ID
//                           whose src[1] is the MoE input x: at its callback x is intact (its
//                           other consumer, the gate's MUL_MAT_ID, is not computed yet or was
//                           computed already, and nothing after it has run), and every expert
//                           is run on N sampled tokens of it (expert_output_gram.h).
// The expert tensors (and biases) are found in the discovery pass, as src[0] of the
// gate/up/gate_up/down MUL_MAT_ID nodes (src[1] of the *_biased ADD_ID nodes): model weights,
// the same tensors in every decode. Only SwiGLU experts are rerun (separate or fused gate/up,
// with or without biases); another activation, per-expert scales, clamped SwiGLU or the gate
// applied before the experts (llama4) is refused at discovery, naming the architecture.
#pragma once

#include "profile/expert_output_gram.h"
#include "stats/expert_stats.h"

#include "ggml.h"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace reap {

// The value of --merge-stats: a positive integer (tokens sampled per micro-batch per layer);
// anything else is a usage error (exit 2).
uint32_t parse_merge_stats(const std::string & value);

class MergeStatsCollector {
public:
    MergeStatsCollector(uint32_t sample_per_batch, std::string arch);

    void                set_threads(int n) { gram_.set_threads(n); }
    uint32_t            sample_per_batch() const { return sample_; }
    const std::string & arch() const { return arch_; }

    // Discovery: a node of MoE layer `il` (its name split into `base` and il) of the layer's
    // first MoE block, in graph order.
    void discover(const ggml_tensor * t, int il, const std::string & base);
    // After discovery: throws a reap::Error naming the architecture and --merge-stats when a
    // layer's experts cannot be rerun; returns the node names to request, each with its layer.
    std::vector<std::pair<std::string, int>> end_discovery(const std::vector<int> & layers);

    // The data of a node end_discovery returned, for layer `il`: adds to `S`'s Grams.
    void collect(ggml_tensor * t, int il, LayerStats & S);

    uint64_t bytes_read() const { return host_bytes_read_ + gram_.bytes_read(); }

private:
    struct Layer {
        std::string      logits, probs, input;  // node names
        ExpertFfnTensors w;
        bool             swiglu = false;
        std::string      unsupported;  // why the experts cannot be rerun; empty: they can
        // scratch of the current micro-batch: the probabilities [T][E]
        std::vector<float> probs_v;
        int64_t            probs_tokens = -1;
    };
    // The node's F32 [E, T] values as [T][E] on the host.
    void read_rows(const ggml_tensor * t, std::vector<float> & dst);

    uint32_t             sample_;
    std::string          arch_;
    std::map<int, Layer> layers_;
    ExpertOutputGram     gram_;
    std::vector<float>   rows_, gates_;
    std::vector<uint8_t> host_;
    uint64_t             host_bytes_read_ = 0;
};

}  // namespace reap
