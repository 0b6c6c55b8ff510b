#include "hf/hf_pruner.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "hf/hf_output.h"
#include "hf/hf_pruning_record.h"
#include "hf/hf_slot_merge.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

namespace reap {

namespace {

constexpr size_t k_chunk = 16u << 20;  // the buffer for data going to several outputs

// One output tensor: which input tensor it comes from, and which expert slices it keeps.
struct OutTensor {
    size_t                        in;
    StOutTensor                   meta;
    const std::vector<uint32_t> * kept  = nullptr;  // fused / router: the slices kept
    size_t                        shard = 0;
    int64_t                       slot  = -1;  // a per-expert tensor of a computed slot: the slot
};

struct OutModel {
    std::vector<OutTensor>               tensors;  // in input order
    std::vector<std::string>             shard_names;
    std::vector<std::vector<size_t>>     shard_tensors;      // indices into tensors
    std::vector<std::optional<uint32_t>> shard_data_offset;  // where each shard's data starts in a block
    std::map<std::string, std::string>   metadata;           // __metadata__ of every shard
    uint64_t                             data_size = 0;      // tensor bytes (the index's total_size)
    uint64_t                             size      = 0;      // weight files, headers included

    std::vector<StOutTensor> shard_meta(size_t s) const {
        std::vector<StOutTensor> m;
        for (size_t i : shard_tensors[s])
            m.push_back(tensors[i].meta);
        return m;
    }
};

// Output tensor for input tensor `i`, or false when the plan drops it.
bool out_tensor(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan, size_t i, OutTensor & o) {
    const StTensor &     t = *c.tensors[i].t;
    const HfTensorRole & r = layout.roles[i];
    o                      = {i, {t.name, t.dtype, t.shape, t.nbytes}, nullptr, 0, -1};
    if (r.role == HfRole::other) return true;
    const LayerPlan &             lp   = plan.layers.at(r.layer);
    const std::vector<uint32_t> & kept = lp.kept;
    if (r.role == HfRole::expert) {
        const auto it = std::lower_bound(kept.begin(), kept.end(), r.expert);
        if (it == kept.end() || *it != r.expert) return false;
        const size_t slot = size_t(it - kept.begin());
        o.meta.name       = r.prefix + std::to_string(slot) + r.suffix;
        if (slot < lp.slots.size() && lp.slots[slot].computed()) o.slot = int64_t(slot);
        return true;
    }
    o.kept          = &kept;
    o.meta.shape[0] = kept.size();
    o.meta.nbytes   = r.slice_bytes * kept.size();
    return true;
}

// Where in a k_copy_alignment block shard `s`'s data should start: at the offset that puts most
// of its bytes at the same place within such a block as in the input, so that copy_file_range
// moves whole page-cache folios. Dropped slices are usually whole blocks (a real model's expert
// tensors and router row sets are multiples of 64 KiB), so one offset fits nearly all the data.
// None when the best one would break 8-byte alignment of the data.
std::optional<uint32_t> data_block_offset(const HfCheckpoint & c, const HfLayout & layout, const OutModel & m,
                                          size_t s) {
    constexpr uint64_t           a = k_copy_alignment;
    std::map<uint32_t, uint64_t> bytes_at;  // (input offset - output offset) mod a -> bytes
    auto                         add = [&](uint64_t in_off, uint64_t out_off, uint64_t n) {
        bytes_at[uint32_t((in_off % a + a - out_off % a) % a)] += n;
    };
    uint64_t out = 0;
    for (size_t i : m.shard_tensors[s]) {
        const OutTensor & o  = m.tensors[i];
        const uint64_t    in = c.tensors[o.in].t->offset;
        if (o.kept == nullptr) {
            add(in, out, o.meta.nbytes);
        } else {
            const uint64_t slice = layout.roles[o.in].slice_bytes;
            for (size_t k = 0; k < o.kept->size(); k++)
                add(in + (*o.kept)[k] * slice, out + k * slice, slice);
        }
        out += o.meta.nbytes;
    }
    const auto best = std::max_element(bytes_at.begin(), bytes_at.end(),
                                       [](const auto & x, const auto & y) { return x.second < y.second; });
    if (best == bytes_at.end() || best->first % 8 != 0) return std::nullopt;
    return best->first;
}

OutModel build_output(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan) {
    check_kept_count(layout.shape, plan.expert_count());
    OutModel m;
    for (size_t i = 0; i < c.tensors.size(); i++) {
        OutTensor o;
        if (out_tensor(c, layout, plan, i, o)) m.tensors.push_back(std::move(o));
    }
    if (!c.shards.empty()) m.metadata = c.shards.front().metadata();
    // Each input shard's kept tensors make one output shard: then a shard's data keeps one
    // offset within a block relative to the input (data_block_offset), and no output shard is
    // larger than its input shard.
    for (size_t i = 0; i < m.tensors.size(); i++) {
        const size_t from = c.tensors[m.tensors[i].in].shard;
        if (i == 0 || from != c.tensors[m.tensors[i - 1].in].shard) m.shard_tensors.emplace_back();
        m.tensors[i].shard = m.shard_tensors.size() - 1;
        m.shard_tensors.back().push_back(i);
        m.data_size += m.tensors[i].meta.nbytes;
    }
    for (size_t s = 0; s < m.shard_tensors.size(); s++) {
        m.shard_names.push_back(c.sharded ? hf_shard_name(s + 1, m.shard_tensors.size()) : k_hf_single_name);
        m.shard_data_offset.push_back(data_block_offset(c, layout, m, s));
        m.size += safetensors_header(m.shard_meta(s), m.metadata, m.shard_data_offset[s]).size();
    }
    m.size += m.data_size;
    return m;
}

// The one pass over the input: each tensor read once, written to every output keeping it.
class HfCopy {
public:
    // mergers[o]: output o's computed slots (null when its plan has none).
    HfCopy(const HfCheckpoint & c, const HfLayout & layout, const std::vector<OutModel> & outs,
           const std::vector<std::unique_ptr<HfOutputFolder>> & dirs,
           const std::vector<std::unique_ptr<HfSlotMerger>> & mergers, Progress & progress)
        : c_(c),
          layout_(layout),
          outs_(outs),
          dirs_(dirs),
          mergers_(mergers),
          progress_(progress),
          cursor_(outs.size(), 0),
          writers_(outs.size()),
          open_shard_(outs.size(), SIZE_MAX) {}

    void copy_tensor(size_t i) {
        std::vector<size_t> to;  // outputs with a copy of input tensor i
        for (size_t o = 0; o < outs_.size(); o++) {
            const auto & ts = outs_[o].tensors;
            if (cursor_[o] < ts.size() && ts[cursor_[o]].in == i) {
                open_writer(o, ts[cursor_[o]].shard);
                if (ts[cursor_[o]].slot < 0) {
                    to.push_back(o);
                    continue;
                }
                // a computed slot's tensor, made from its sources
                stop_point("pruning (no output folder was written)");
                const std::vector<uint8_t> b = mergers_[o]->tensor(i, uint32_t(ts[cursor_[o]].slot));
                writers_[o]->write(b.data(), b.size());
                bytes_ += b.size();
                progress_.update(bytes_);
                cursor_[o]++;
            }
        }
        const HfTensor & t = c_.tensors[i];
        if (!to.empty() && layout_.roles[i].role != HfRole::fused && layout_.roles[i].role != HfRole::router) {
            copy_range(t, 0, t.t->nbytes, to);
        } else if (!to.empty()) {
            copy_slices(t, layout_.roles[i].slice_bytes, to);
        }
        for (size_t o : to)
            cursor_[o]++;
    }

    void finish() {
        for (auto & w : writers_) {
            if (w) w->finish();
            w.reset();
        }
    }

private:
    void open_writer(size_t o, size_t shard) {
        if (open_shard_[o] == shard) return;
        if (writers_[o]) writers_[o]->finish();
        const OutModel & m = outs_[o];
        writers_[o]    = std::make_unique<SafetensorsWriter>(dirs_[o]->file(m.shard_names[shard]), m.shard_meta(shard),
                                                          m.metadata, m.shard_data_offset[shard]);
        open_shard_[o] = shard;
    }

    // Expert by expert, each run of slices to the outputs that keep it (consecutive experts with
    // the same outputs go as one range).
    void copy_slices(const HfTensor & t, uint64_t slice, const std::vector<size_t> & to) {
        const uint32_t      n = layout_.config.n_expert;
        std::vector<size_t> run_to;
        uint32_t            run_start = 0;
        for (uint32_t e = 0; e <= n; e++) {
            std::vector<size_t> keep;
            for (size_t o : to) {
                const auto & kept = *outs_[o].tensors[cursor_[o]].kept;
                if (e < n && std::binary_search(kept.begin(), kept.end(), e)) keep.push_back(o);
            }
            if (e == n || keep != run_to) {
                if (!run_to.empty())
                    copy_range(t, uint64_t(run_start) * slice, uint64_t(e - run_start) * slice, run_to);
                run_to    = keep;
                run_start = e;
            }
        }
    }

    // Bytes [off, off+n) of input tensor t to the outputs `to`: in the kernel for one output,
    // through one buffer (one read) for several.
    void copy_range(const HfTensor & t, uint64_t off, uint64_t n, const std::vector<size_t> & to) {
        const SafetensorsFile & f = c_.shards[t.shard];
        if (to.size() == 1) {
            for (uint64_t done = 0; done < n;) {
                const uint64_t k = std::min<uint64_t>(n - done, 64u << 20);
                stop_point("pruning (no output folder was written)");
                writers_[to[0]]->copy_from(f.fd(), t.t->offset + off + done, k, f.path());
                done += k;
                bytes_ += k;
                progress_.update(bytes_);
            }
            return;
        }
        if (buf_.empty()) buf_.resize(k_chunk);
        for (uint64_t done = 0; done < n;) {
            const uint64_t k = std::min<uint64_t>(n - done, buf_.size());
            stop_point("pruning (no output folder was written)");
            f.read(*t.t, off + done, buf_.data(), k);
            for (size_t o : to) {
                writers_[o]->write(buf_.data(), k);
                bytes_ += k;
            }
            done += k;
            progress_.update(bytes_);
        }
    }

    const HfCheckpoint &                                 c_;
    const HfLayout &                                     layout_;
    const std::vector<OutModel> &                        outs_;
    const std::vector<std::unique_ptr<HfOutputFolder>> & dirs_;
    const std::vector<std::unique_ptr<HfSlotMerger>> &   mergers_;
    Progress &                                           progress_;
    std::vector<size_t>                                  cursor_;
    std::vector<std::unique_ptr<SafetensorsWriter>>      writers_;
    std::vector<size_t>                                  open_shard_;
    std::vector<uint8_t>                                 buf_;
    uint64_t                                             bytes_ = 0;
};

// Everything but the weights: config.json, the index, reap_prune.json, the other files.
void write_side_files(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan, const OutModel & m,
                      const HfOutputFolder & dir) {
    write_text_file(dir.file("config.json"),
                    pruned_config_text(c.config_text, layout.config, plan.expert_count(), c.config_path));
    if (c.sharded) {
        std::map<std::string, std::string> map;
        for (const auto & t : m.tensors)
            map[t.meta.name] = m.shard_names[t.shard];
        write_text_file(dir.file(k_hf_index_name), hf_index_text(c.index, m.data_size, {map.begin(), map.end()}));
    }
    write_text_file(dir.file(k_hf_prune_record),
                    hf_pruning_record_text(plan, c.dir, layout.config.n_expert, c.weights_outside_index));
    dir.copy_other_files(c);
}

}  // namespace

uint64_t hf_pruned_size(const HfCheckpoint & c, const HfLayout & layout, const Plan & plan) {
    return build_output(c, layout, plan).size;
}

void prune_hf(const HfCheckpoint & c, const HfLayout & layout, const std::vector<PruneJob> & jobs, bool show_progress) {
    std::vector<OutModel> outs;
    uint64_t              total = 0;
    for (size_t j = 0; j < jobs.size(); j++) {
        check_plan(jobs[j].plan, layout.shape, jobs[j].output);
        for (size_t k = 0; k < j; k++) {
            if (same_file(jobs[j].output, jobs[k].output))
                fail("%s: two outputs with the same name", jobs[j].output.c_str());
        }
        outs.push_back(build_output(c, layout, jobs[j].plan));
        total += outs.back().data_size;
    }
    // Computed slots that cannot be made are refused before anything is written.
    std::vector<std::unique_ptr<HfSlotMerger>> mergers(jobs.size());
    for (size_t j = 0; j < jobs.size(); j++) {
        if (!jobs[j].plan.computed()) continue;
        check_hf_computed_slots(c, layout, jobs[j].plan);
        mergers[j] = std::make_unique<HfSlotMerger>(c, layout, jobs[j].plan);
    }
    // Every folder is created before the long copy, so a bad path fails at once.
    std::vector<std::unique_ptr<HfOutputFolder>> dirs;
    for (const auto & j : jobs)
        dirs.push_back(std::make_unique<HfOutputFolder>(j.output, c.dir));
    Progress progress("prune", total, "bytes", show_progress);
    HfCopy   copy(c, layout, outs, dirs, mergers, progress);
    for (size_t i = 0; i < c.tensors.size(); i++)
        copy.copy_tensor(i);
    copy.finish();
    progress.finish();
    for (size_t j = 0; j < jobs.size(); j++)
        write_side_files(c, layout, jobs[j].plan, outs[j], *dirs[j]);
    for (auto & d : dirs)
        d->commit();
}

}  // namespace reap
