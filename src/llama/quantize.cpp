#include "llama/quantize.h"

#include "gguf/imatrix_prune.h"
#include "gguf/moe_layout.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/log.h"
#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <llama.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace reap {

namespace {

// A temporary beside the output, named as core/atomic_file names its own, removed unless renamed.
struct TempOutput {
    std::string path;
    bool        kept = false;

    explicit TempOutput(const std::string & final_path) {
        const size_t      slash = final_path.rfind('/');
        const std::string dir   = slash == std::string::npos ? "" : final_path.substr(0, slash + 1);
        const std::string base  = slash == std::string::npos ? final_path : final_path.substr(slash + 1);
        path                    = dir + "." + base + ".tmp." + std::to_string(::getpid());
    }
    ~TempOutput() {
        if (!kept) std::remove(path.c_str());
    }
};

bool same_name(const char * a, const std::string & b) {
    if (std::strlen(a) != b.size()) return false;
    for (size_t i = 0; i < b.size(); i++) {
        if (std::toupper((unsigned char) a[i]) != std::toupper((unsigned char) b[i])) return false;
    }
    return true;
}

// llama_model_kv_override with a string value, as llama-quantize records its imatrix.
llama_model_kv_override kv_str(const char * key, const std::string & value) {
    llama_model_kv_override kvo{};
    std::strncpy(kvo.key, key, sizeof kvo.key - 1);
    kvo.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
    std::strncpy(kvo.val_str, value.c_str(), sizeof kvo.val_str - 1);
    return kvo;
}

llama_model_kv_override kv_int(const char * key, int64_t value) {
    llama_model_kv_override kvo{};
    std::strncpy(kvo.key, key, sizeof kvo.key - 1);
    kvo.tag     = LLAMA_KV_OVERRIDE_TYPE_INT;
    kvo.val_i64 = value;
    return kvo;
}

}  // namespace

const std::vector<QuantType> & quant_types() {
    // tools/quantize/quantize.cpp's QUANT_OPTIONS of the provisioned llama.cpp, in its order.
    static const std::vector<QuantType> types = {
        {"Q1_0", LLAMA_FTYPE_MOSTLY_Q1_0, "1.125 bpw quantization"},
        {"Q2_0", LLAMA_FTYPE_MOSTLY_Q2_0, "2.25 bpw quantization (group 64)"},
        {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0, "4.34G, +0.4685 ppl @ Llama-3-8B"},
        {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1, "4.78G, +0.4511 ppl @ Llama-3-8B"},
        {"MXFP4_MOE", LLAMA_FTYPE_MOSTLY_MXFP4_MOE, "MXFP4 MoE"},
        {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0, "5.21G, +0.1316 ppl @ Llama-3-8B"},
        {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1, "5.65G, +0.1062 ppl @ Llama-3-8B"},
        {"IQ2_XXS", LLAMA_FTYPE_MOSTLY_IQ2_XXS, "2.06 bpw quantization"},
        {"IQ2_XS", LLAMA_FTYPE_MOSTLY_IQ2_XS, "2.31 bpw quantization"},
        {"IQ2_S", LLAMA_FTYPE_MOSTLY_IQ2_S, "2.5  bpw quantization"},
        {"IQ2_M", LLAMA_FTYPE_MOSTLY_IQ2_M, "2.7  bpw quantization"},
        {"IQ1_S", LLAMA_FTYPE_MOSTLY_IQ1_S, "1.56 bpw quantization"},
        {"IQ1_M", LLAMA_FTYPE_MOSTLY_IQ1_M, "1.75 bpw quantization"},
        {"TQ1_0", LLAMA_FTYPE_MOSTLY_TQ1_0, "1.69 bpw ternarization"},
        {"TQ2_0", LLAMA_FTYPE_MOSTLY_TQ2_0, "2.06 bpw ternarization"},
        {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K, "2.96G, +3.5199 ppl @ Llama-3-8B"},
        {"Q2_K_S", LLAMA_FTYPE_MOSTLY_Q2_K_S, "2.96G, +3.1836 ppl @ Llama-3-8B"},
        {"IQ3_XXS", LLAMA_FTYPE_MOSTLY_IQ3_XXS, "3.06 bpw quantization"},
        {"IQ3_S", LLAMA_FTYPE_MOSTLY_IQ3_S, "3.44 bpw quantization"},
        {"IQ3_M", LLAMA_FTYPE_MOSTLY_IQ3_M, "3.66 bpw quantization mix"},
        {"Q3_K", LLAMA_FTYPE_MOSTLY_Q3_K_M, "alias for Q3_K_M"},
        {"IQ3_XS", LLAMA_FTYPE_MOSTLY_IQ3_XS, "3.3 bpw quantization"},
        {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S, "3.41G, +1.6321 ppl @ Llama-3-8B"},
        {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M, "3.74G, +0.6569 ppl @ Llama-3-8B"},
        {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L, "4.03G, +0.5562 ppl @ Llama-3-8B"},
        {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL, "4.50 bpw non-linear quantization"},
        {"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS, "4.25 bpw non-linear quantization"},
        {"Q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M, "alias for Q4_K_M"},
        {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S, "4.37G, +0.2689 ppl @ Llama-3-8B"},
        {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M, "4.58G, +0.1754 ppl @ Llama-3-8B"},
        {"Q5_K", LLAMA_FTYPE_MOSTLY_Q5_K_M, "alias for Q5_K_M"},
        {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S, "5.21G, +0.1049 ppl @ Llama-3-8B"},
        {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M, "5.33G, +0.0569 ppl @ Llama-3-8B"},
        {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K, "6.14G, +0.0217 ppl @ Llama-3-8B"},
        {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0, "7.96G, +0.0026 ppl @ Llama-3-8B"},
        {"F16", LLAMA_FTYPE_MOSTLY_F16, "14.00G, +0.0020 ppl @ Mistral-7B"},
        {"BF16", LLAMA_FTYPE_MOSTLY_BF16, "14.00G, -0.0050 ppl @ Mistral-7B"},
        {"F32", LLAMA_FTYPE_ALL_F32, "26.00G @ 7B"},
        {"COPY", LLAMA_FTYPE_ALL_F32, "only copy tensors, no quantizing"},
    };
    return types;
}

const QuantType & parse_quant_type(const std::string & name, const char * option) {
    for (const QuantType & t : quant_types()) {
        if (same_name(t.name, name)) return t;
    }
    std::string names;
    for (const QuantType & t : quant_types())
        names += (names.empty() ? "" : ", ") + std::string(t.name);
    fail_usage("%s: '%s' is not a type of llama-quantize: %s", option, name.c_str(), names.c_str());
}

bool is_quantized_gguf(const std::string & path) {
    const GgufFile f = GgufFile::open(path);
    for (const TensorInfo & t : f.tensors()) {
        if (ggml_is_quantized(t.type)) return true;
    }
    return false;
}

std::vector<std::pair<std::string, std::vector<float>>> imatrix_means(const Imatrix & m) {
    std::vector<std::pair<std::string, std::vector<float>>> out;
    out.reserve(m.entries.size());
    for (const auto & [name, e] : m.entries) {
        std::vector<float> v(e.in_sum2.size());
        const size_t       n_cols = size_t(e.n_cols);
        for (size_t j = 0; j < e.n_mat(); j++) {
            // llama-quantize reads both as F32 and divides in float.
            const float count = float(e.counts[j]);
            for (size_t i = 0; i < n_cols; i++)
                v[j * n_cols + i] = count > 0.0f ? float(e.in_sum2[j * n_cols + i]) / count : 1.0f;
        }
        out.emplace_back(name, std::move(v));
    }
    return out;
}

void check_imatrix_fits(const Imatrix & m, const std::string & imatrix_name, const std::string & model) {
    // The one rule of which importance matrix belongs to which model (gguf/imatrix_prune.h).
    const GgufFile f = GgufFile::open(model);
    check_imatrix_for_model(m, imatrix_name, f, analyze_moe(f));
}

QuantizeOutcome quantize_model(const QuantizeRequest & r) {
    const QuantType & type = parse_quant_type(r.type);
    if (r.output.empty()) fail_usage("give the quantized model's output path");
    // Every part of a split input, by device and inode (llama-quantize compares the paths).
    std::vector<std::string> inputs = {r.input};
    if (std::filesystem::exists(r.input)) inputs = GgufFile::open(r.input).split_paths();
    refuse_output_over_inputs(r.output, inputs);

    QuantizeOutcome out;
    out.requantized = is_quantized_gguf(r.input);
    if (out.requantized && r.note_requantize) {
        log_info("%s: already quantized; requantizing it to %s (llama-quantize's --allow-requantize)",
                 base_name(r.input).c_str(), type.name);
    }

    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.nthread                     = r.n_threads;
    p.ftype                       = llama_ftype(type.ftype);
    p.allow_requantize            = true;
    p.only_copy                   = std::strcmp(type.name, "COPY") == 0;
    p.keep_split                  = false;

    std::vector<std::pair<std::string, std::vector<float>>> means;
    std::vector<llama_model_imatrix_data>                   data;
    std::vector<llama_model_kv_override>                    kv;
    if (r.imatrix && !r.imatrix->entries.empty()) {
        check_imatrix_fits(*r.imatrix, r.imatrix_name.empty() ? "the importance matrix" : r.imatrix_name, r.input);
        means = imatrix_means(*r.imatrix);
        for (const auto & [name, v] : means)
            data.push_back({name.c_str(), v.data(), v.size()});
        data.push_back({nullptr, nullptr, 0});  // the terminator llama.h asks for
        p.imatrix = data.data();
        // The keys llama-quantize writes with --imatrix.
        kv.push_back(kv_str("quantize.imatrix.file", r.imatrix_name));
        if (!r.imatrix->datasets.empty()) kv.push_back(kv_str("quantize.imatrix.dataset", r.imatrix->datasets[0]));
        kv.push_back(kv_int("quantize.imatrix.entries_count", int64_t(means.size())));
        if (r.imatrix->chunk_count > 0) kv.push_back(kv_int("quantize.imatrix.chunks_count", r.imatrix->chunk_count));
        kv.emplace_back();
        kv.back().key[0] = 0;  // terminator
        p.kv_overrides   = kv.data();
    }

    TempOutput tmp(r.output);
    uint32_t   rc = 0;
    {
        LogCapture log;  // llama.cpp's warnings: the reason of a failure, the fallback count
        rc                     = llama_model_quantize(r.input.c_str(), tmp.path.c_str(), &p);
        const std::string last = log.last_line();
        if (rc != 0) {
            fail("%s: llama.cpp could not quantize it to %s (%s)", r.input.c_str(), type.name,
                 last.empty() ? "no reason given" : last.c_str());
        }
        // "llama_model_quantize_impl: WARNING: 29 of 51 tensor(s) required fallback quantization"
        const size_t at = last.find("WARNING: ");
        if (last.find("fallback quantization") != std::string::npos)
            out.fallback = at == std::string::npos ? last : last.substr(at + 9);
    }
    // On disk before the rename, as core/atomic_file commits: never a name over a partial file.
    const int fd = ::open(tmp.path.c_str(), O_RDONLY);
    if (fd < 0) fail("%s: llama.cpp wrote no quantized model", r.output.c_str());
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) fail("%s: cannot sync the quantized model: %s", r.output.c_str(), std::strerror(errno));
    if (std::rename(tmp.path.c_str(), r.output.c_str()) != 0) {
        fail("%s: cannot rename the quantized model into place: %s", r.output.c_str(), std::strerror(errno));
    }
    tmp.kept = true;
    return out;
}

}  // namespace reap
