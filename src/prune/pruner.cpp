#include "prune/pruner.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"

#include "ggml.h"
#include "llama.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

namespace reap {

namespace {

constexpr size_t k_chunk = 16u << 20;  // streaming buffer

struct GgufCtxDeleter { void operator()(gguf_context * c) const { gguf_free(c); } };
struct GgmlCtxDeleter { void operator()(ggml_context * c) const { ggml_free(c); } };

// How one output tensor is made from the input.
struct Recipe {
    const TensorInfo *  in;
    const ExpertTensor * expert = nullptr;  // null: copied whole
    const std::vector<uint32_t> * kept = nullptr;
    std::vector<uint8_t>          remapped;  // expert-id tensors: the whole tensor, ids renumbered
};

struct OutputLayout {
    std::unique_ptr<gguf_context, GgufCtxDeleter>              gguf;     // the whole output
    std::unique_ptr<ggml_context, GgmlCtxDeleter>              tensors;
    std::vector<Recipe>                                        recipes;
    std::vector<std::unique_ptr<gguf_context, GgufCtxDeleter>> splits;   // split files (empty: one file)
    std::vector<size_t>                                        file_of;  // per tensor: its file index
    uint64_t                                                   size = 0; // all files together

    const gguf_context * file_ctx(size_t f) const { return splits.empty() ? gguf.get() : splits[f].get(); }
    size_t               n_files() const { return splits.empty() ? 1 : splits.size(); }
};

void set_count_key(gguf_context * ctx, const gguf_context * src, const std::string & key, uint32_t v) {
    // Keep the key's type: llama.cpp reads expert_count with a strict type check.
    const int64_t k = gguf_find_key(src, key.c_str());
    switch (k < 0 ? GGUF_TYPE_UINT32 : gguf_get_kv_type(src, k)) {
        case GGUF_TYPE_UINT8:  gguf_set_val_u8(ctx, key.c_str(), uint8_t(v)); break;
        case GGUF_TYPE_UINT16: gguf_set_val_u16(ctx, key.c_str(), uint16_t(v)); break;
        case GGUF_TYPE_INT32:  gguf_set_val_i32(ctx, key.c_str(), int32_t(v)); break;
        case GGUF_TYPE_UINT64: gguf_set_val_u64(ctx, key.c_str(), v); break;
        case GGUF_TYPE_INT64:  gguf_set_val_i64(ctx, key.c_str(), v); break;
        default:               gguf_set_val_u32(ctx, key.c_str(), v); break;
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
    for (size_t i = 0; i < kept.size(); i++) new_id[kept[i]] = int32_t(i);
    for (size_t i = 0; i < bytes.size() / 4; i++) {
        int32_t id;
        std::memcpy(&id, &bytes[i * 4], 4);
        if (id < 0 || size_t(id) >= new_id.size() || new_id[size_t(id)] < 0) {
            fail("%s: tensor '%s' routes tokens to expert %d, which this plan drops; hash-routed experts cannot be "
                 "pruned", in.path().c_str(), t.name.c_str(), id);
        }
        std::memcpy(&bytes[i * 4], &new_id[size_t(id)], 4);
    }
    return bytes;
}

OutputLayout build_output(const GgufFile & in, const MoeLayout & layout, const Plan & plan, uint64_t split_max) {
    OutputLayout out;
    out.gguf.reset(gguf_init_empty());
    gguf_context * ctx = out.gguf.get();
    gguf_set_kv(ctx, in.meta());
    // The output is one file, always padded to gguf's default 32 bytes.
    for (const char * k : {"split.no", "split.count", "split.tensors.count"}) gguf_remove_key(ctx, k);
    if (in.get_uint("general.alignment").value_or(32) != 32) gguf_remove_key(ctx, "general.alignment");

    set_count_key(ctx, in.meta(), layout.arch + ".expert_count", plan.kept);
    // expert_used_count never exceeds the kept count (check_kept_count), so it stays as it is.
    gguf_set_val_str(ctx, "reap.prune.criterion", plan.criterion.c_str());
    gguf_set_val_f32(ctx, "reap.prune.keep_ratio", float(plan.keep_ratio));
    gguf_set_val_u32(ctx, "reap.prune.n_expert_original", layout.n_expert);
    gguf_set_val_str(ctx, "reap.prune.source", base_name(in.path()).c_str());
    if (!plan.stats.empty()) gguf_set_val_str(ctx, "reap.prune.stats", base_name(plan.stats).c_str());
    for (const auto & [il, lp] : plan.layers) {
        gguf_set_arr_data(ctx, ("reap.prune.layer." + std::to_string(il) + ".kept").c_str(), GGUF_TYPE_UINT32,
                          lp.kept.data(), lp.kept.size());
    }

    ggml_init_params ip{ggml_tensor_overhead() * (in.tensors().size() + 1), nullptr, true};
    out.tensors.reset(ggml_init(ip));
    std::map<const TensorInfo *, const ExpertTensor *> expert_of;
    for (const auto & e : layout.expert_tensors) expert_of[e.info] = &e;

    for (const auto & t : in.tensors()) {
        Recipe r;
        r.in = &t;
        int64_t ne[4] = {t.ne[0], t.ne[1], t.ne[2], t.ne[3]};
        auto    it    = expert_of.find(&t);
        if (it != expert_of.end()) {
            const ExpertTensor & e = *it->second;
            if (e.role == ExpertRole::unknown) {
                fail("%s: tensor '%s' looks like a per-expert tensor this tool does not know; refusing to guess how to "
                     "prune it", in.path().c_str(), t.name.c_str());
            }
            if (e.role == ExpertRole::expert_ids) {
                r.remapped = remap_expert_ids(in, t, plan.layers.at(e.layer).kept);
            } else {
                r.expert = &e;
                r.kept   = &plan.layers.at(e.layer).kept;
                ne[t.n_dims - 1] = int64_t(r.kept->size());
            }
        }
        ggml_tensor * gt = ggml_new_tensor(out.tensors.get(), t.type, t.n_dims, ne);
        ggml_set_name(gt, t.name.c_str());
        gguf_add_tensor(ctx, gt);
        out.recipes.push_back(r);
    }
    // Split like llama.cpp's gguf-split: a new file when the next tensor would pass the limit;
    // every file carries split.no/count/tensors.count, the first one all the other keys too.
    const size_t align = gguf_get_alignment(ctx);
    const int64_t n_tensors = gguf_get_n_tensors(ctx);
    uint64_t      part = 0;
    out.file_of.assign(size_t(n_tensors), 0);
    for (int64_t i = 0; i < n_tensors && split_max > 0; i++) {
        const uint64_t sz = GGML_PAD(gguf_get_tensor_size(ctx, i), align);
        if (part > 0 && part + sz > split_max) {
            out.file_of[size_t(i)] = out.file_of[size_t(i - 1)] + 1;
            part                   = 0;
        } else if (i > 0) {
            out.file_of[size_t(i)] = out.file_of[size_t(i - 1)];
        }
        part += sz;
    }
    const size_t n_files = n_tensors > 0 ? out.file_of.back() + 1 : 1;
    if (n_files > 1) {
        for (size_t f = 0; f < n_files; f++) {
            out.splits.emplace_back(gguf_init_empty());
            gguf_context * sc = out.splits.back().get();
            if (f == 0) gguf_set_kv(sc, ctx);
            gguf_set_val_u16(sc, "split.no", uint16_t(f));
            gguf_set_val_u16(sc, "split.count", uint16_t(n_files));
            gguf_set_val_i32(sc, "split.tensors.count", int32_t(n_tensors));
        }
        for (int64_t i = 0; i < n_tensors; i++) {
            gguf_add_tensor(out.splits[out.file_of[size_t(i)]].get(),
                            ggml_get_tensor(out.tensors.get(), gguf_get_tensor_name(ctx, i)));
        }
    }
    for (size_t f = 0; f < out.n_files(); f++) {
        out.size += gguf_get_meta_size(out.file_ctx(f));
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        out.size += GGML_PAD(gguf_get_tensor_size(ctx, i), align);
    }
    return out;
}

std::vector<std::string> file_names(const std::string & output, size_t n_files) {
    if (n_files == 1) return {output};
    const bool        ext    = output.size() > 5 && output.compare(output.size() - 5, 5, ".gguf") == 0;
    const std::string prefix = ext ? output.substr(0, output.size() - 5) : output;
    std::vector<std::string> names;
    for (size_t f = 0; f < n_files; f++) {
        char p[4096];
        llama_split_path(p, sizeof(p), prefix.c_str(), int(f), int(n_files));
        names.push_back(p);
    }
    return names;
}

}  // namespace

uint64_t pruned_file_size(const GgufFile & in, const MoeLayout & layout, const Plan & plan, uint64_t split_max) {
    return build_output(in, layout, plan, split_max).size;
}

std::vector<std::string> pruned_file_names(const GgufFile & in, const MoeLayout & layout, const PruneJob & job) {
    return file_names(job.output, build_output(in, layout, job.plan, job.split_max_bytes).n_files());
}

void prune_model(const GgufFile & in, const MoeLayout & layout, const std::vector<PruneJob> & jobs, bool show_progress) {
    std::vector<OutputLayout>             outs;
    std::vector<std::vector<std::string>> names;
    uint64_t                              total = 0;
    for (const auto & j : jobs) {
        check_plan(j.plan, layout, j.output);
        outs.push_back(build_output(in, layout, j.plan, j.split_max_bytes));
        names.push_back(file_names(j.output, outs.back().n_files()));
        total += outs.back().size;
    }
    std::vector<std::string> all_names;
    for (const auto & n : names) all_names.insert(all_names.end(), n.begin(), n.end());
    for (size_t a = 0; a < all_names.size(); a++) {
        for (const auto & sp : in.split_paths()) {
            if (same_file(all_names[a], sp)) {
                fail("%s: the output would overwrite the input model", all_names[a].c_str());
            }
        }
        for (size_t b = a + 1; b < all_names.size(); b++) {
            if (same_file(all_names[a], all_names[b])) fail("%s: two outputs with the same name", all_names[a].c_str());
        }
    }
    // Create every output file before the long copy, so a bad path fails at once.
    std::vector<std::vector<std::unique_ptr<AtomicFile>>> files(outs.size());
    for (size_t o = 0; o < outs.size(); o++) {
        for (const auto & n : names[o]) files[o].push_back(std::make_unique<AtomicFile>(n));
    }
    Progress progress("prune", total, "bytes", show_progress);
    uint64_t written = 0;
    for (size_t o = 0; o < outs.size(); o++) {
        for (size_t f = 0; f < outs[o].n_files(); f++) {
            std::vector<uint8_t> meta(gguf_get_meta_size(outs[o].file_ctx(f)));
            gguf_get_meta_data(outs[o].file_ctx(f), meta.data());
            files[o][f]->write(meta.data(), meta.size());
            written += meta.size();
        }
    }

    std::vector<uint8_t> buf(k_chunk);
    static const uint8_t zeros[64] = {};
    std::vector<uint64_t> tensor_bytes(outs.size());

    size_t i = 0;  // the tensor being copied; its file in output o is files[o][outs[o].file_of[i]]
    auto   out_file = [&](size_t o) { return files[o][outs[o].file_of[i]].get(); };

    // Copies bytes [off, off+n) of input tensor t to the outputs in `to`.
    auto copy_range = [&](const TensorInfo & t, uint64_t off, uint64_t n, const std::vector<size_t> & to) {
        while (n > 0) {
            const uint64_t c = std::min<uint64_t>(n, buf.size());
            in.read(t, off, buf.data(), c);
            for (size_t o : to) {
                out_file(o)->write(buf.data(), c);
                tensor_bytes[o] += c;
                written += c;
            }
            off += c;
            n -= c;
            progress.update(written);
        }
    };

    for (; i < in.tensors().size(); i++) {
        const TensorInfo & t = in.tensors()[i];
        std::fill(tensor_bytes.begin(), tensor_bytes.end(), 0);
        std::vector<size_t> all(outs.size());
        for (size_t o = 0; o < outs.size(); o++) all[o] = o;
        const Recipe & r0 = outs[0].recipes[i];
        if (!r0.remapped.empty()) {
            for (size_t o = 0; o < outs.size(); o++) {
                const auto & b = outs[o].recipes[i].remapped;
                out_file(o)->write(b.data(), b.size());
                tensor_bytes[o] += b.size();
                written += b.size();
            }
        } else if (r0.expert == nullptr) {
            copy_range(t, 0, t.nbytes, all);
        } else {
            const uint64_t slice = r0.expert->slice_bytes;
            for (uint32_t e = 0; e < layout.n_expert; e++) {
                std::vector<size_t> to;
                for (size_t o = 0; o < outs.size(); o++) {
                    const auto & kept = *outs[o].recipes[i].kept;
                    if (std::binary_search(kept.begin(), kept.end(), e)) to.push_back(o);
                }
                if (!to.empty()) copy_range(t, uint64_t(e) * slice, slice, to);
            }
        }
        for (size_t o = 0; o < outs.size(); o++) {
            const size_t align = gguf_get_alignment(outs[o].gguf.get());
            const size_t pad   = (align - tensor_bytes[o] % align) % align;
            out_file(o)->write(zeros, pad);
            written += pad;
        }
    }
    progress.finish();
    for (auto & fo : files) {
        for (auto & f : fo) f->commit();
    }
}

}  // namespace reap
