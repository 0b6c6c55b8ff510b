#include "gguf/gguf_pruner.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "gguf/gguf_pruning_record.h"
#include "gguf/gguf_slot_merge.h"
#include "gguf/gguf_writer.h"
#include "gguf/imatrix_file.h"
#include "moe/expert_budget.h"

#include "ggml.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

namespace reap {

namespace {

constexpr size_t k_chunk = 16u << 20;  // streaming buffer

// How one output tensor is made from the input.
struct Recipe {
    const TensorInfo *    in;
    const ExpertTensor *  expert = nullptr;  // null: copied whole
    std::vector<uint32_t> kept;              // slices kept along the outer axis (experts or chunks)
    std::vector<uint8_t>  remapped;          // expert-id tensors: the whole tensor, ids renumbered
    const LayerPlan *     merged = nullptr;  // a merged layer's FFN tensor: its computed slots are made
};

struct OutputLayout {
    GgufContextPtr      gguf;  // the whole output
    GgmlContextPtr      tensors;
    std::vector<Recipe> recipes;
    GgufSplitLayout     split;     // the files it is written as
    uint64_t            size = 0;  // all files together

    const gguf_context * file_ctx(size_t f) const { return split.files.empty() ? gguf.get() : split.files[f].get(); }
    size_t               n_files() const { return split.n_files(); }
};

void set_count_key(gguf_context * ctx, const gguf_context * src, const std::string & key, uint32_t v) {
    // Keep the key's type: llama.cpp reads expert_count with a strict type check.
    const int64_t k = gguf_find_key(src, key.c_str());
    switch (k < 0 ? GGUF_TYPE_UINT32 : gguf_get_kv_type(src, k)) {
        case GGUF_TYPE_UINT8: gguf_set_val_u8(ctx, key.c_str(), uint8_t(v)); break;
        case GGUF_TYPE_UINT16: gguf_set_val_u16(ctx, key.c_str(), uint16_t(v)); break;
        case GGUF_TYPE_INT32: gguf_set_val_i32(ctx, key.c_str(), int32_t(v)); break;
        case GGUF_TYPE_UINT64: gguf_set_val_u64(ctx, key.c_str(), v); break;
        case GGUF_TYPE_INT64: gguf_set_val_i64(ctx, key.c_str(), v); break;
        default: gguf_set_val_u32(ctx, key.c_str(), v); break;
    }
}

// Hash routing (ffn_gate_tid2eid: token -> expert ids) stores expert ids as values. They can be
// renumbered only if every id the table uses survives the pruning.
std::vector<uint8_t> remap_expert_ids(const GgufFile & in, const TensorInfo & t, const std::vector<uint32_t> & kept) {
    if (t.type != GGML_TYPE_I32) {
        fail("%s: expert-id tensor '%s' has type %s, expected i32", in.path().c_str(), t.name.c_str(),
             ggml_type_name(t.type));
    }
    std::vector<uint8_t> bytes(t.nbytes);
    in.read(t, 0, bytes.data(), bytes.size());
    std::vector<int32_t> new_id(*std::max_element(kept.begin(), kept.end()) + 1, -1);
    for (size_t i = 0; i < kept.size(); i++)
        new_id[kept[i]] = int32_t(i);
    for (size_t i = 0; i < bytes.size() / 4; i++) {
        int32_t id;
        std::memcpy(&id, &bytes[i * 4], 4);
        if (id < 0 || size_t(id) >= new_id.size() || new_id[size_t(id)] < 0) {
            fail(
                "%s: tensor '%s' routes tokens to expert %d, which this plan drops; hash-routed experts cannot be "
                "pruned",
                in.path().c_str(), t.name.c_str(), id);
        }
        std::memcpy(&bytes[i * 4], &new_id[size_t(id)], 4);
    }
    return bytes;
}

// The output's key-value pairs: the input's, the expert count lowered, and what was pruned.
void set_output_keys(gguf_context * ctx, const GgufFile & in, const MoeLayout & layout, const Plan & plan) {
    gguf_set_kv(ctx, in.meta());
    // The output is one file, always padded to gguf's default 32 bytes.
    for (const char * k : {"split.no", "split.count", "split.tensors.count", k_split_set_id_key})
        gguf_remove_key(ctx, k);
    if (in.get_uint("general.alignment").value_or(32) != 32) gguf_remove_key(ctx, "general.alignment");

    set_count_key(ctx, in.meta(), layout.arch + ".expert_count", plan.expert_count());
    if (layout.experts_per_chunk > 0) {
        // Each kept adjugate group keeps the same number (check_plan): the new group size.
        set_count_key(ctx, in.meta(), layout.arch + ".experts_per_group",
                      kept_per_chunk(layout.shape(), plan.expert_count()));
    }
    // expert_used_count never exceeds the kept count (check_kept_count), so it stays as it is.
    write_pruning_record(ctx, plan, in.path(), layout.n_expert);
}

// How input tensor `t` becomes an output tensor (`e`: its expert-tensor entry, or null), and the
// output's shape in `ne`: per-expert tensors lose the dropped experts' slices of their last axis.
Recipe tensor_recipe(const GgufFile & in, const MoeLayout & layout, const TensorInfo & t, const ExpertTensor * e,
                     const Plan & plan, int64_t ne[4]) {
    Recipe r;
    r.in = &t;
    for (int d = 0; d < 4; d++)
        ne[d] = t.ne[d];
    if (e == nullptr) {
        return r;
    }
    if (e->role == ExpertRole::unknown) {
        fail(
            "%s: tensor '%s' looks like a per-expert tensor this tool does not know; refusing to guess how to "
            "prune it",
            in.path().c_str(), t.name.c_str());
    }
    if (e->role == ExpertRole::expert_ids) {
        r.remapped = remap_expert_ids(in, t, plan.layers.at(e->layer).kept);
    } else {
        r.expert             = e;
        r.kept               = kept_slices(layout, *e, plan);
        ne[t.n_dims - 1]     = int64_t(r.kept.size());
        const LayerPlan & lp = plan.layers.at(e->layer);
        if (lp.computed() && computed_per_slot(*e)) r.merged = &lp;
    }
    return r;
}

OutputLayout build_output(const GgufFile & in, const MoeLayout & layout, const Plan & plan, uint64_t split_max) {
    // The planner keeps the rules; this makes sure no file llama.cpp would abort on is written.
    check_llama_limits(layout, plan.expert_count(), "the pruned model");
    OutputLayout out;
    out.gguf.reset(gguf_init_empty());
    gguf_context * ctx = out.gguf.get();
    set_output_keys(ctx, in, layout, plan);

    out.tensors = tensor_meta_context(in.tensors().size());
    std::map<const TensorInfo *, const ExpertTensor *> expert_of;
    for (const auto & e : layout.expert_tensors)
        expert_of[e.info] = &e;
    for (const auto & t : in.tensors()) {
        const auto    it = expert_of.find(&t);
        int64_t       ne[4];
        Recipe        r  = tensor_recipe(in, layout, t, it == expert_of.end() ? nullptr : it->second, plan, ne);
        ggml_tensor * gt = ggml_new_tensor(out.tensors.get(), t.type, t.n_dims, ne);
        ggml_set_name(gt, t.name.c_str());
        gguf_add_tensor(ctx, gt);
        out.recipes.push_back(std::move(r));
    }
    out.split = split_like_gguf_split(ctx, out.tensors.get(), split_max);
    out.size  = gguf_output_size(ctx, out.split);
    return out;
}

// The single pass over the input: each tensor is read once and written to every output that
// keeps (part of) it.
class PruneCopy {
public:
    // mergers[o]: output o's computed slots (null when its plan has none).
    PruneCopy(const GgufFile & in, const std::vector<OutputLayout> & outs,
              std::vector<std::vector<std::unique_ptr<GgufFileWriter>>> & writers,
              std::vector<std::unique_ptr<GgufSlotMerger>> & mergers, Progress & progress, uint64_t written)
        : in_(in),
          outs_(outs),
          writers_(writers),
          mergers_(mergers),
          progress_(progress),
          written_(written),
          buf_(k_chunk) {}

    void copy_tensor(size_t i) {
        i_ = i;
        // The kernel reads this tensor's kept bytes and the next one's while this one is copied.
        if (i == 0) prefetch(0);
        if (i + 1 < in_.tensors().size()) prefetch(i + 1);
        const TensorInfo & t  = in_.tensors()[i];
        const Recipe &     r0 = outs_[0].recipes[i];
        if (!r0.remapped.empty()) {
            for (size_t o = 0; o < outs_.size(); o++) {
                const auto & b = outs_[o].recipes[i].remapped;
                out_file(o).write(b.data(), b.size());
                written_ += b.size();
            }
        } else if (r0.expert == nullptr) {
            std::vector<size_t> all(outs_.size());
            for (size_t o = 0; o < outs_.size(); o++)
                all[o] = o;
            copy_range(t, 0, t.nbytes, all);
        } else {
            copy_kept_slices(t, r0.expert->slice_bytes);
        }
        for (size_t o = 0; o < outs_.size(); o++) {
            written_ += out_file(o).end_tensor();
        }
        progress_.update(written_);  // with the padding, so the last line reaches the total
    }

private:
    GgufFileWriter & out_file(size_t o) { return *writers_[o][outs_[o].split.file_of[i_]]; }

    // Asks for the bytes of tensor i that some output keeps, as runs of consecutive slices.
    void prefetch(size_t i) const {
        const TensorInfo & t  = in_.tensors()[i];
        const Recipe &     r0 = outs_[0].recipes[i];
        if (!r0.remapped.empty()) return;  // rewritten in memory already
        if (r0.expert == nullptr) {
            in_.prefetch(t, 0, t.nbytes);
            return;
        }
        const uint64_t slice = r0.expert->slice_bytes;
        const uint32_t n     = uint32_t(t.ne[t.n_dims - 1]);
        for (uint32_t e = 0; e < n;) {
            if (!kept_by_any(i, e)) {
                e++;
                continue;
            }
            uint32_t end = e + 1;
            while (end < n && kept_by_any(i, end))
                end++;
            in_.prefetch(t, uint64_t(e) * slice, uint64_t(end - e) * slice);
            e = end;
        }
    }

    bool kept_by_any(size_t i, uint32_t e) const {
        for (const auto & out : outs_) {
            const auto & kept = out.recipes[i].kept;
            if (std::binary_search(kept.begin(), kept.end(), e)) return true;
        }
        return false;
    }

    // Expert (or adjugate expert) by expert, each slice to the outputs that keep it: copied, or
    // for a computed slot made from its sources.
    void copy_kept_slices(const TensorInfo & t, uint64_t slice) {
        for (uint32_t e = 0; e < uint32_t(t.ne[t.n_dims - 1]); e++) {
            std::vector<size_t> to;
            for (size_t o = 0; o < outs_.size(); o++) {
                const Recipe & r  = outs_[o].recipes[i_];
                const auto     it = std::lower_bound(r.kept.begin(), r.kept.end(), e);
                if (it == r.kept.end() || *it != e) continue;
                const uint32_t slot = uint32_t(it - r.kept.begin());
                if (r.merged == nullptr || !r.merged->slots.at(slot).computed()) {
                    to.push_back(o);
                    continue;
                }
                stop_point("pruning (no output was written)");
                const std::vector<uint8_t> b = mergers_[o]->slice(*r.expert, slot);
                out_file(o).write(b.data(), b.size());
                written_ += b.size();
            }
            if (!to.empty()) copy_range(t, uint64_t(e) * slice, slice, to);
        }
    }

    // Copies bytes [off, off+n) of input tensor t to the outputs in `to`.
    void copy_range(const TensorInfo & t, uint64_t off, uint64_t n, const std::vector<size_t> & to) {
        while (n > 0) {
            const uint64_t c = std::min<uint64_t>(n, buf_.size());
            stop_point("pruning (no output was written)");
            in_.read(t, off, buf_.data(), c);
            in_.drop_cached(t, off, c);  // read once: keeping it only grows the page cache
            for (size_t o : to) {
                out_file(o).write(buf_.data(), c);
                written_ += c;
            }
            off += c;
            n -= c;
            progress_.update(written_);
        }
    }

    const GgufFile &                                            in_;
    const std::vector<OutputLayout> &                           outs_;
    std::vector<std::vector<std::unique_ptr<GgufFileWriter>>> & writers_;
    std::vector<std::unique_ptr<GgufSlotMerger>> &              mergers_;
    Progress &                                                  progress_;
    uint64_t                                                    written_;
    std::vector<uint8_t>                                        buf_;
    size_t                                                      i_ = 0;  // the tensor being copied
};

}  // namespace

std::vector<uint32_t> kept_slices(const MoeLayout & layout, const ExpertTensor & e, const Plan & plan) {
    const std::vector<uint32_t> & kept = plan.layers.at(e.layer).kept;
    return e.role == ExpertRole::chunk_weights ? kept_chunks(kept, layout.experts_per_chunk) : kept;
}

uint64_t pruned_file_size(const GgufFile & in, const MoeLayout & layout, const Plan & plan, uint64_t split_max) {
    return build_output(in, layout, plan, split_max).size;
}

std::vector<std::string> pruned_file_names(const GgufFile & in, const MoeLayout & layout, const PruneJob & job) {
    return split_file_names(job.output, build_output(in, layout, job.plan, job.split_max_bytes).n_files());
}

void prune_model(const GgufFile & in, const MoeLayout & layout, const std::vector<PruneJob> & jobs, bool show_progress,
                 const std::vector<GgufFileWriter *> & also) {
    std::vector<OutputLayout>             outs;
    std::vector<std::vector<std::string>> names;
    std::vector<std::string>              all_names;
    uint64_t                              total = 0;
    for (const auto & j : jobs) {
        check_plan(j.plan, layout.shape(), j.output);
        outs.push_back(build_output(in, layout, j.plan, j.split_max_bytes));
        names.push_back(split_file_names(j.output, outs.back().n_files()));
        all_names.insert(all_names.end(), names.back().begin(), names.back().end());
        total += outs.back().size;
    }
    refuse_clashing_outputs(all_names, in.split_paths());
    // Computed slots: refused before anything is written when they cannot be made; each job's
    // importance matrix read once.
    std::map<std::string, Imatrix>               imatrices;
    std::vector<std::unique_ptr<GgufSlotMerger>> mergers(jobs.size());
    for (size_t j = 0; j < jobs.size(); j++) {
        if (!jobs[j].plan.computed()) continue;
        check_computed_slots(in, layout, jobs[j].plan, !jobs[j].imatrix.empty());
        const Imatrix * im = nullptr;
        if (!jobs[j].imatrix.empty()) {
            auto it = imatrices.find(jobs[j].imatrix);
            if (it == imatrices.end()) it = imatrices.emplace(jobs[j].imatrix, read_imatrix(jobs[j].imatrix)).first;
            im = &it->second;
        }
        mergers[j] = std::make_unique<GgufSlotMerger>(in, layout, jobs[j].plan, im);
    }
    // Create every output file (with its metadata) before the long copy, so a bad path fails at once.
    std::vector<std::vector<std::unique_ptr<GgufFileWriter>>> writers(outs.size());
    uint64_t                                                  written = 0;
    for (size_t o = 0; o < outs.size(); o++) {
        for (size_t f = 0; f < outs[o].n_files(); f++) {
            writers[o].push_back(std::make_unique<GgufFileWriter>(names[o][f], outs[o].file_ctx(f)));
            written += writers[o].back()->meta_size();
        }
    }
    Progress  progress("prune", total, "bytes", show_progress);
    PruneCopy copy(in, outs, writers, mergers, progress, written);
    for (size_t i = 0; i < in.tensors().size(); i++) {
        copy.copy_tensor(i);
    }
    progress.finish();
    // All parts of all outputs appear together or none does: a split set is never a mix of this
    // run and an earlier one (the caller's StopSignalGuard holds a signal until the renames are done).
    std::vector<GgufFileWriter *> files = also;
    for (auto & wo : writers) {
        for (auto & w : wo)
            files.push_back(w.get());
    }
    commit_together(files);
}

}  // namespace reap
