// Collects REAP statistics from llama.cpp's eval callback (cb_eval), one micro-batch at a time.
//
// Per MoE layer it needs three graph nodes, found by exact name in a discovery pass over a
// one-token decode (llama.cpp's names vary with the architecture):
//   raw      "ffn_moe_weights-<il>": router output of the selected experts; its src[1] is the
//            top-k expert ids (a strided view of the argsort: read with its strides);
//   applied  src[1] of "ffn_moe_weighted-<il>": the weight that multiplies the expert output
//            after any softmax/normalisation/scaling (ffn_moe_weights_softmax/_norm/_scaled);
//   down     the last of "ffn_moe_down", "_scaled", "_biased" for the layer: the expert output
//            f_j(t) before the gate (ffn_moe_weighted overwrites it in place, so it is read at
//            the down node itself).
// From the down node it also keeps, per expert, the largest |element| of f and its channel (the
// super-expert signal, stats/super_experts.h). When the down node is not in host memory (a GPU,
// an --rpc server), these per-(token, slot) values are computed on its device and only they are
// copied (device_norms.h; REAP_DEVICE_NORMS chooses).
// Only these nodes are requested from the scheduler, so the graph is cut as little as possible.
// GroveMoE runs a second MoE block per layer over its adjugate ("chunk") experts with the same
// node names; its expert output is told apart by the *_chexps weights of its MUL_MAT_ID and
// declined, and a block's raw node starts it afresh, so only the routed experts are measured.
// Architectures that gate the expert's input instead of its output (llama4: the weighted node
// comes before the experts) are detected from the graph order; see ARCHITECTURE.md.
//
// With an ImatrixCollector (profile --imatrix), every matrix multiplication it collects is
// requested too, and the stop node below is the last of those or of the MoE nodes.
//
// With a MergeStatsCollector (profile --merge-stats), its nodes (router logits and
// probabilities, the experts' input) are requested too; they come before the down node.
//
// With stop_after_last_layer (the default), the callback returns false once the last requested
// node of the micro-batch has been read: ggml-backend then skips the rest of that graph split,
// which on a CPU graph is the output norm and head (n_vocab logits per token, which nobody
// reads). Everything a later micro-batch needs (the KV cache of every layer up to the last MoE
// layer) is written before that node in graph order. The logits of such a decode are garbage.
#pragma once

#include "profile/device_norms.h"
#include "profile/expert_norms.h"
#include "profile/imatrix_collector.h"
#include "profile/merge_stats_collector.h"
#include "stats/expert_stats.h"

#include "ggml.h"

#include <exception>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace reap {

class MoeCollector {
public:
    MoeCollector(uint32_t n_expert, const std::vector<int> & moe_layers);

    // The callback to install as llama_context_params::cb_eval with `this` as user data.
    static bool eval_callback(ggml_tensor * t, bool ask, void * user_data);

    // Discovery: while on, every node is declined and the MoE node names are recorded.
    void begin_discovery();
    void end_discovery();  // throws if a MoE layer's nodes were not found

    // Whether to end the graph after the last needed node (see above); set before decoding.
    void set_stop_after_last_layer(bool on) { stop_enabled_ = on; }
    // Also collect the importance matrix into `m` (which must outlive the decodes); set before
    // discovery, so that the graph is not ended before the last matrix multiplication.
    void set_imatrix(ImatrixCollector * m) { imatrix_ = m; }
    // Also collect the merge Grams (profile --merge-stats) with `m` (which must outlive the
    // decodes); set before discovery, which finds its nodes. Starts every layer's Grams at zero.
    void set_merge_stats(MergeStatsCollector * m);
    // Threads for the norms computed on the host (the decode's batch threads).
    void set_threads(int n) { n_threads_ = n > 0 ? n : 1; }

    // Rethrows (and clears) the first exception raised inside the callback during the last
    // decode, of its own class (a reap::Error, or a bug's).
    void check_error();

    ExpertStats &       stats() { return stats_; }
    const ExpertStats & stats() const { return stats_; }
    bool                gate_before_expert(int il) const { return layers_.at(il).gate_before_expert; }
    int                 nodes_requested_per_layer() const;
    // Bytes copied from device buffers so far: the norms computed there, and whole tensors read
    // on the host (router weights and ids; expert outputs when not computed on the device).
    uint64_t bytes_read_from_devices() const {
        return host_bytes_read_ + device_norms_.bytes_read() + (merge_ != nullptr ? merge_->bytes_read() : 0);
    }
    uint64_t device_norms_bytes() const { return device_norms_.bytes_read(); }
    // Time spent in the callback with data (reading nodes, norms, sums): the collector's own cost.
    double seconds() const { return seconds_; }

private:
    enum class Kind { raw, applied, down, merge };
    struct Layer {
        std::string raw, applied, down;
        bool        gate_before_expert = false;
        bool        seen_weighted      = false;
        bool        second_block       = false;  // discovery: a second ffn_moe_weights in this layer
        bool        chunk_block        = false;  // ... and its experts are adjugate (*_chexps) ones
        // scratch for the current micro-batch
        int64_t              n_tokens = -1;
        int64_t              n_used   = 0;
        std::vector<int32_t> ids;
        std::vector<float>   raw_w, applied_w;
    };

    bool on_ask(ggml_tensor * t);
    void on_data(ggml_tensor * t);
    bool discover(ggml_tensor * t);  // false: the node is in a layer's second (chunk) block
    // The name a node has in the graph order the stop node is chosen from: its own, or for a
    // matrix multiplication the importance matrix collects, its name and its weight's.
    std::string order_key(const ggml_tensor * t) const;
    void        read_weights(ggml_tensor * t, Layer & L, std::vector<float> & dst, bool with_ids);
    void        accumulate(ggml_tensor * t, int il, Layer & L);
    void        set_error(const std::string & e);

    uint32_t                                              n_expert_;
    std::map<int, Layer>                                  layers_;
    std::unordered_map<std::string, std::pair<int, Kind>> wanted_;
    ExpertStats                                           stats_;
    bool                                                  discovering_ = false;
    // Discovery: whether the last node with a layer suffix was in its layer's second MoE block.
    bool                     in_second_block_ = false;
    std::exception_ptr       error_;             // the first exception raised inside the callback
    std::vector<uint8_t>     host_;              // staging for device tensors
    std::vector<std::string> discovered_order_;  // named nodes, graph order
    std::string              stop_after_;        // order_key of the last requested node in graph order
    ImatrixCollector *       imatrix_      = nullptr;
    MergeStatsCollector *    merge_        = nullptr;
    bool                     stop_enabled_ = true;
    NormsPlacement           placement_;
    DeviceNorms              device_norms_;
    ExpertNorms              norms_;  // of the current down node
    uint64_t                 host_bytes_read_ = 0;
    int                      n_threads_       = 1;
    double                   seconds_         = 0;
};

// Splits "name-<il>" into name and il; returns -1 when there is no layer suffix.
int split_layer_suffix(const char * name, std::string & base);

}  // namespace reap
