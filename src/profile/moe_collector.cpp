#include "profile/moe_collector.h"

#include "core/error.h"

#include "ggml-backend.h"

#include <chrono>
#include <cmath>
#include <cstring>

namespace reap {

int split_layer_suffix(const char * name, std::string & base) {
    const char * dash = std::strrchr(name, '-');
    if (dash == nullptr || dash[1] == '\0') {
        return -1;
    }
    int il = 0;
    for (const char * p = dash + 1; *p; p++) {
        if (*p < '0' || *p > '9' || il > 100000) {
            return -1;
        }
        il = il * 10 + (*p - '0');
    }
    base.assign(name, size_t(dash - name));
    return il;
}

// Whether `t` (ffn_moe_down or its _scaled/_biased successor) is the output of adjugate experts:
// its MUL_MAT_ID multiplies *_chexps weights. In a split graph the weight may be a backend's copy
// ("CUDA0#blk.3.ffn_down_chexps.weight#0"), hence the substring.
static bool is_chunk_expert_output(const ggml_tensor * t) {
    for (int depth = 0; t != nullptr && depth < 4; depth++, t = t->src[0]) {
        if (t->op == GGML_OP_MUL_MAT_ID) {
            return t->src[0] != nullptr && std::strstr(t->src[0]->name, "_chexps") != nullptr;
        }
    }
    return false;
}

MoeCollector::MoeCollector(uint32_t n_expert, const std::vector<int> & moe_layers)
    : n_expert_(n_expert), placement_(norms_placement_from_env()) {
    for (int il : moe_layers) {
        layers_[il];
        stats_.layers.emplace(il, LayerStats(n_expert));
    }
}

void MoeCollector::set_merge_stats(MergeStatsCollector * m) {
    merge_ = m;
    for (auto & [il, S] : stats_.layers)
        S.enable_merge_stats(m->sample_per_batch());
}

int MoeCollector::nodes_requested_per_layer() const {
    if (layers_.empty()) return 0;
    const Layer & L = layers_.begin()->second;
    return (L.applied == L.raw ? 2 : 3) + (merge_ != nullptr ? 3 : 0);
}

void MoeCollector::begin_discovery() {
    discovering_     = true;
    in_second_block_ = false;
    discovered_order_.clear();
    for (auto & [il, L] : layers_) {
        L = Layer{};
    }
}

void MoeCollector::end_discovery() {
    discovering_ = false;
    wanted_.clear();
    for (auto & [il, L] : layers_) {
        if (L.second_block && !L.chunk_block) {
            fail("layer %d runs a second MoE block over the same experts; reap cannot tell what each measures", il);
        }
        if (L.raw.empty() || L.applied.empty() || L.down.empty()) {
            fail("layer %d: llama.cpp's graph has no %s node for this MoE layer (unsupported MoE structure)", il,
                 L.raw.empty()    ? "ffn_moe_weights"
                 : L.down.empty() ? "ffn_moe_down"
                                  : "ffn_moe_weighted");
        }
        wanted_[L.raw] = {il, Kind::raw};
        if (L.applied != L.raw) {
            wanted_[L.applied] = {il, Kind::applied};
        }
        wanted_[L.down] = {il, Kind::down};
    }
    if (merge_ != nullptr) {
        std::vector<int> layers;
        for (const auto & [il, L] : layers_) {
            // The adjugate block reuses the routed block's node names: its nodes would be taken
            // for the routed experts'.
            if (L.chunk_block) {
                fail("--merge-stats does not support architecture %s: layer %d runs a second (adjugate) MoE block",
                     merge_->arch().c_str(), il);
            }
            layers.push_back(il);
        }
        for (const auto & [name, il] : merge_->end_discovery(layers)) {
            if (!wanted_.emplace(name, std::make_pair(il, Kind::merge)).second) {
                fail("layer %d: node %s is both a REAP and a --merge-stats node", il, name.c_str());
            }
        }
    }
    stop_after_.clear();
    for (const std::string & name : discovered_order_) {
        if (wanted_.count(name) != 0 || name.find('|') != std::string::npos) stop_after_ = name;
    }
    discovered_order_.clear();
    check_error();
}

void MoeCollector::set_error(const std::string & e) {
    if (!error_) {
        error_ = std::make_exception_ptr(Error(e));
    }
}

void MoeCollector::check_error() {
    if (error_) {
        const std::exception_ptr e = error_;
        error_                     = nullptr;
        std::rethrow_exception(e);
    }
}

bool MoeCollector::eval_callback(ggml_tensor * t, bool ask, void * user_data) {
    auto * self = static_cast<MoeCollector *>(user_data);
    if (ask) {
        return self->on_ask(t);
    }
    // Never let an exception cross llama.cpp's C frames; report it after llama_decode returns.
    const auto t0 = std::chrono::steady_clock::now();
    // The exception itself is kept, so that it keeps its class: a reap::Error exits 1, anything
    // else is a bug (exit 70), as outside the callback.
    try {
        self->on_data(t);
    } catch (...) {
        if (!self->error_) self->error_ = std::current_exception();
    }
    self->seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // false ends the current graph split: the nodes after the last one needed are not computed.
    return !(self->stop_enabled_ && !self->stop_after_.empty() && self->stop_after_ == self->order_key(t));
}

std::string MoeCollector::order_key(const ggml_tensor * t) const {
    if (imatrix_ != nullptr && ImatrixCollector::collects_kind(t)) {
        return std::string(t->name) + "|" + ImatrixCollector::weight_name(t);
    }
    return t->name;
}

bool MoeCollector::on_ask(ggml_tensor * t) {
    if (discovering_) {
        // A second block's nodes share the first's names: they must not move the stop node. Its
        // matrix multiplications are the importance matrix's like any other.
        const bool in_first_block = discover(t);
        if (imatrix_ != nullptr && ImatrixCollector::collects_kind(t)) {
            discovered_order_.push_back(order_key(t));
        } else if (in_first_block && t->name[0] != '\0') {
            discovered_order_.emplace_back(t->name);
        }
        return false;
    }
    if (imatrix_ != nullptr && ImatrixCollector::wants(t)) {
        return true;
    }
    const auto it = wanted_.find(t->name);
    if (it == wanted_.end()) {
        return false;
    }
    return !(it->second.second == Kind::down && is_chunk_expert_output(t));
}

bool MoeCollector::discover(ggml_tensor * t) {
    std::string base;
    const int   il = split_layer_suffix(t->name, base);
    if (il < 0) {
        return !in_second_block_;  // "ffn_moe_weights_norm-3 (reshaped)": the block around it
    }
    auto it = layers_.find(il);
    if (it == layers_.end()) {
        if (base == "ffn_moe_weights") {
            set_error(strfmt(
                "llama.cpp's graph has a MoE block in layer %d, which the model file has no expert tensors for", il));
        }
        in_second_block_ = false;
        return true;
    }
    Layer &    L        = it->second;
    const bool is_down  = base == "ffn_moe_down" || base == "ffn_moe_down_scaled" || base == "ffn_moe_down_biased";
    const bool adjugate = is_down && is_chunk_expert_output(t);
    if (base == "ffn_moe_weights" && !L.raw.empty()) {
        L.second_block = true;
    }
    in_second_block_ = L.second_block;
    if (L.second_block) {
        if (adjugate) L.chunk_block = true;
        return false;
    }
    if (adjugate) {
        set_error(strfmt("layer %d: llama.cpp's graph runs the adjugate experts before the routed ones", il));
    }
    if (merge_ != nullptr) merge_->discover(t, il, base);
    if (base == "ffn_moe_weights") {
        L.raw = t->name;
        if (t->src[1] == nullptr || t->src[1]->type != GGML_TYPE_I32) {
            set_error(strfmt("layer %d: ffn_moe_weights is not a get_rows over expert ids", il));
        }
    } else if (base == "ffn_moe_weighted") {
        if (t->src[1] == nullptr) {
            set_error(strfmt("layer %d: ffn_moe_weighted has no weight operand", il));
            return true;
        }
        // In a graph split over several backends, the operand can be the split's copy of the
        // node ("<backend>#<name>#<n>"), which the callback never sees: the node itself is wanted.
        std::string  applied    = t->src[1]->name;
        const size_t first_hash = applied.find('#'), last_hash = applied.rfind('#');
        if (first_hash != std::string::npos && last_hash > first_hash) {
            applied = applied.substr(first_hash + 1, last_hash - first_hash - 1);
        }
        L.applied       = applied;
        L.seen_weighted = true;
        // The weighted node before the experts means the gate scales the expert's input.
        L.gate_before_expert = L.down.empty();
    } else if (is_down) {
        L.down = t->name;  // the last one in graph order is the expert's final output
    }
    return true;
}

// Reads a [1, n_used, T] or [n_used, T] F32 weight tensor (and, for the raw node, the expert ids
// in its src[1], [n_used, T] I32 with a row stride of n_expert ids) into host vectors.
void MoeCollector::read_weights(ggml_tensor * t, Layer & L, std::vector<float> & dst, bool with_ids) {
    const bool    three_d  = t->ne[0] == 1 && ggml_n_dims(t) >= 2;
    const int64_t n_used   = three_d ? t->ne[1] : t->ne[0];
    const int64_t n_tokens = three_d ? t->ne[2] : t->ne[1];
    const size_t  nb_k     = three_d ? t->nb[1] : t->nb[0];
    const size_t  nb_t     = three_d ? t->nb[2] : t->nb[1];
    if (t->type != GGML_TYPE_F32) {
        fail("%s: expected F32 router weights, got %s", t->name, ggml_type_name(t->type));
    }
    if (with_ids) {
        L.n_tokens = -1;  // the raw node starts a block (GroveMoE's second one follows the first)
    }
    if (L.n_tokens >= 0 && (L.n_tokens != n_tokens || L.n_used != n_used)) {
        fail("%s: shape [%lld, %lld] does not match the layer's other MoE nodes", t->name, (long long) n_used,
             (long long) n_tokens);
    }
    L.n_tokens = n_tokens;
    L.n_used   = n_used;

    auto host_data = [&](ggml_tensor * x) -> const uint8_t * {
        if (x->buffer == nullptr || ggml_backend_buffer_is_host(x->buffer)) {
            return static_cast<const uint8_t *>(x->data);
        }
        host_.resize(ggml_nbytes(x));
        ggml_backend_tensor_get(x, host_.data(), 0, host_.size());
        host_bytes_read_ += host_.size();
        return host_.data();
    };

    dst.resize(size_t(n_used * n_tokens));
    const uint8_t * w = host_data(t);
    for (int64_t tok = 0; tok < n_tokens; tok++) {
        for (int64_t k = 0; k < n_used; k++) {
            dst[size_t(tok * n_used + k)] = *reinterpret_cast<const float *>(w + tok * nb_t + k * nb_k);
        }
    }
    if (with_ids) {
        ggml_tensor * ids = t->src[1];
        if (ids->ne[0] != n_used || ids->ne[1] != n_tokens) {
            fail("%s: expert ids have shape [%lld, %lld], expected [%lld, %lld]", ids->name, (long long) ids->ne[0],
                 (long long) ids->ne[1], (long long) n_used, (long long) n_tokens);
        }
        const uint8_t * d = host_data(ids);
        L.ids.resize(size_t(n_used * n_tokens));
        for (int64_t tok = 0; tok < n_tokens; tok++) {
            for (int64_t k = 0; k < n_used; k++) {
                const int32_t e = *reinterpret_cast<const int32_t *>(d + tok * ids->nb[1] + k * ids->nb[0]);
                if (e < 0 || uint32_t(e) >= n_expert_) {
                    fail("%s: expert id %d out of range [0, %u) for token %lld", ids->name, e, n_expert_,
                         (long long) tok);
                }
                L.ids[size_t(tok * n_used + k)] = e;
            }
        }
    }
}

void MoeCollector::accumulate(ggml_tensor * t, int il, Layer & L) {
    // [n_embd, n_used, T]; a micro-batch can deliver zero tokens.
    const int64_t n_embd = t->ne[0], n_used = t->ne[1], n_tokens = t->ne[2];
    if (t->type != GGML_TYPE_F32 || t->nb[0] != sizeof(float)) {
        fail("%s: expected a row-contiguous F32 expert output, got %s", t->name, ggml_type_name(t->type));
    }
    if (n_tokens == 0) {
        L.n_tokens = -1;
        return;
    }
    if (L.n_tokens != n_tokens || L.n_used != n_used || L.ids.size() != size_t(n_used * n_tokens)) {
        fail("%s: %lld tokens x %lld experts, but the router nodes of layer %d had %lld x %lld", t->name,
             (long long) n_tokens, (long long) n_used, il, (long long) L.n_tokens, (long long) L.n_used);
    }
    const std::vector<float> & applied = L.applied == L.raw ? L.raw_w : L.applied_w;
    if (applied.size() != L.ids.size()) {
        fail("%s: layer %d's gate weights (%s) were not observed in this micro-batch", t->name, il, L.applied.c_str());
    }
    // With the gate applied to the expert's input (llama4), f already carries g: the expert's
    // contribution to the layer output is ||f|| itself (nothing renormalises).
    const float * gates     = L.gate_before_expert ? nullptr : applied.data();
    const bool    on_host   = t->buffer == nullptr || ggml_backend_buffer_is_host(t->buffer);
    const bool    on_device = placement_ != NormsPlacement::off && DeviceNorms::has_device(t) &&
                           (!on_host || placement_ == NormsPlacement::always_device);
    if (on_device) {
        device_norms_.compute(t, gates, norms_);
    } else {
        const uint8_t * d = static_cast<const uint8_t *>(t->data);
        if (!on_host) {
            host_.resize(ggml_nbytes(t));
            ggml_backend_tensor_get(t, host_.data(), 0, host_.size());
            host_bytes_read_ += host_.size();
            d = host_.data();
        }
        expert_norms_host(d, t->nb[1], t->nb[2], n_embd, n_used, n_tokens, gates, norms_, n_threads_);
    }
    LayerStats & S = stats_.layers.at(il);
    for (size_t idx = 0; idx < size_t(n_used * n_tokens); idx++) {
        const double norm  = norms_.norm[idx];
        const double gate  = double(applied[idx]);
        const double score = L.gate_before_expert ? norm : gate * norm;
        S.add(uint32_t(L.ids[idx]), gate, double(L.raw_w[idx]), norm, score,
              L.gate_before_expert ? score : norms_.renorm[idx]);
        S.add_output_max(uint32_t(L.ids[idx]), norms_.peak[idx], uint32_t(norms_.peak_at[idx]));
    }
    S.total_tokens += uint64_t(n_tokens);
    L.n_tokens = -1;
}

void MoeCollector::on_data(ggml_tensor * t) {
    if (imatrix_ != nullptr && ImatrixCollector::wants(t)) {
        imatrix_->collect(t);
    }
    auto it = wanted_.find(t->name);
    // A GroveMoE adjugate block's output is asked for only by the importance matrix.
    if (it == wanted_.end() || (it->second.second == Kind::down && is_chunk_expert_output(t))) {
        return;
    }
    const int il = it->second.first;
    Layer &   L  = layers_.at(il);
    switch (it->second.second) {
        case Kind::raw: read_weights(t, L, L.raw_w, true); break;
        case Kind::applied: read_weights(t, L, L.applied_w, false); break;
        case Kind::down: accumulate(t, il, L); break;
        case Kind::merge: merge_->collect(t, il, stats_.layers.at(il)); break;
    }
}

}  // namespace reap
