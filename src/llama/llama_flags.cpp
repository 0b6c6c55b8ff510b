#include "llama/llama_flags.h"

#include "core/error.h"
#include "core/log.h"
#include "core/system_memory.h"
#include "core/text.h"

#include "ggml-backend.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace reap {

ggml_type parse_cache_type(const std::string & name) {
    for (ggml_type t : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                        GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_IQ4_NL}) {
        if (name == ggml_type_name(t)) {
            return t;
        }
    }
    fail("unknown KV cache type '%s' (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl)", name.c_str());
}

std::vector<ggml_backend_dev_t> offload_devices() {
    std::vector<ggml_backend_dev_t> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        const auto         t = ggml_backend_dev_type(d);
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            out.push_back(d);
        }
    }
    return out;
}

namespace {

std::vector<std::string> split_list(const std::string & s, const char * seps) {
    std::vector<std::string> out;
    size_t                   start = 0;
    while (start <= s.size()) {
        const size_t end = s.find_first_of(seps, start);
        out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return out;
}

std::string device_names(const std::vector<ggml_backend_dev_t> & devs) {
    std::string s;
    for (auto * d : devs)
        s += (s.empty() ? "" : ", ") + std::string(ggml_backend_dev_name(d));
    return s.empty() ? "none" : s;
}

// The device a registered RPC endpoint provides, or null when it was not given with --rpc:
// an RPC server registered by an earlier model of this process may be gone.
bool is_rpc(ggml_backend_dev_t d) {
    return std::string(ggml_backend_reg_name(ggml_backend_dev_backend_reg(d))) == "RPC";
}

bool rpc_requested(ggml_backend_dev_t d, const std::vector<std::string> & endpoints) {
    return std::find(endpoints.begin(), endpoints.end(), ggml_backend_dev_description(d)) != endpoints.end();
}

}  // namespace

LlamaModelParams::LlamaModelParams(const LlamaFlags & f, const std::string & what)
    : params_(llama_model_default_params()) {
    add_rpc_servers(f.rpc);
    set_devices(f);
    if (devices_.size() <= 1 && f.n_gpu_layers > 0) {  // devices_ ends with its null terminator
        fail(
            "-ngl %d: this llama.cpp build has no GPU backend and no --rpc server was given, so no layer can be "
            "offloaded (%s)",
            f.n_gpu_layers, what.c_str());
    }
    params_.n_gpu_layers = f.n_gpu_layers;
    if (f.no_mmap && f.mlock) {
        params_.load_mode = LLAMA_LOAD_MODE_MLOCK;
    } else if (f.mlock) {
        params_.load_mode = LLAMA_LOAD_MODE_MMAP_MLOCK;
    } else if (f.no_mmap) {
        params_.load_mode = LLAMA_LOAD_MODE_NONE;
    }
    if (f.mlock && !llama_supports_mlock()) fail("--mlock: this system does not support mlock");
    params_.use_extra_bufts = f.repack;
    set_overrides(f);
    set_split(f);
}

void LlamaModelParams::set_devices(const LlamaFlags & f) {
    const std::vector<ggml_backend_dev_t> all = offload_devices();
    if (f.devices.size() == 1 && f.devices[0] == "none") {
        // no device: everything on the CPU
    } else if (!f.devices.empty()) {
        for (const std::string & name : f.devices) {
            ggml_backend_dev_t d = ggml_backend_dev_by_name(name.c_str());
            if (d == nullptr || std::find(all.begin(), all.end(), d) == all.end()) {
                fail("-dev %s: no such GPU or RPC device in this build (available: %s)", name.c_str(),
                     device_names(all).c_str());
            }
            devices_.push_back(d);
        }
    } else {
        // llama.cpp's default order: RPC servers first (fewer transfers), then GPUs. RPC devices
        // of servers not named by this run's --rpc are left out.
        for (auto * d : all)
            if (is_rpc(d) && rpc_requested(d, f.rpc)) devices_.push_back(d);
        for (auto * d : all)
            if (!is_rpc(d)) devices_.push_back(d);
    }
    devices_.push_back(nullptr);
    params_.devices = devices_.data();
}

void LlamaModelParams::set_overrides(const LlamaFlags & f) {
    std::vector<std::pair<std::string, std::string>> wanted;  // pattern, buffer type name
    for (const std::string & arg : f.override_tensor) {
        for (const std::string & item : split_list(arg, ",")) {
            const size_t eq = item.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
                fail("-ot %s: expected PATTERN=BUFTYPE (e.g. exps=CPU)", item.c_str());
            }
            wanted.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        }
    }
    // --cpu-moe / --n-cpu-moe N: llama.cpp's own patterns for expert tensors.
    const char * exps = "\\.ffn_(up|down|gate|gate_up)_(ch|)exps";
    if (f.cpu_moe) wanted.emplace_back(exps, "CPU");
    for (int i = 0; i < f.n_cpu_moe; i++)
        wanted.emplace_back("blk\\." + std::to_string(i) + exps, "CPU");

    // The buffer types of the CPU and of the devices this model uses (an RPC device of another
    // run of this process may be gone: asking it for its buffer type would abort).
    std::vector<ggml_backend_dev_t> candidates(devices_.begin(), devices_.end() - 1);
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_CPU) candidates.push_back(d);
    }
    std::string available;
    for (auto * d : candidates) {
        ggml_backend_buffer_type_t b = ggml_backend_dev_buffer_type(d);
        if (b != nullptr) available += (available.empty() ? "" : ", ") + std::string(ggml_backend_buft_name(b));
    }
    for (const auto & [pattern, type] : wanted) {
        ggml_backend_buffer_type_t buft = nullptr;
        for (auto * d : candidates) {
            ggml_backend_buffer_type_t b = ggml_backend_dev_buffer_type(d);
            if (b != nullptr && type == ggml_backend_buft_name(b)) buft = b;
        }
        if (buft == nullptr) {
            fail("-ot %s=%s: no buffer type '%s' in this build (available: %s)", pattern.c_str(), type.c_str(),
                 type.c_str(), available.c_str());
        }
        patterns_.push_back(pattern);
        overrides_.push_back({patterns_.back().c_str(), buft});
    }
    if (overrides_.size() >= llama_max_tensor_buft_overrides()) {
        fail("-ot: %zu tensor overrides, llama.cpp takes at most %zu", overrides_.size(),
             llama_max_tensor_buft_overrides() - 1);
    }
    if (!overrides_.empty()) {
        overrides_.push_back({nullptr, nullptr});
        params_.tensor_buft_overrides = overrides_.data();
    }
}

void LlamaModelParams::set_split(const LlamaFlags & f) {
    static const std::pair<const char *, llama_split_mode> modes[] = {{"none", LLAMA_SPLIT_MODE_NONE},
                                                                      {"layer", LLAMA_SPLIT_MODE_LAYER},
                                                                      {"row", LLAMA_SPLIT_MODE_ROW},
                                                                      {"tensor", LLAMA_SPLIT_MODE_TENSOR}};
    bool                                                   known   = false;
    for (const auto & [name, mode] : modes) {
        if (f.split_mode == name) {
            params_.split_mode = mode;
            known              = true;
        }
    }
    if (!known) fail("-sm %s: expected none, layer, row or tensor", f.split_mode.c_str());
    const size_t n_dev = devices_.size() - 1;
    if (f.split_mode != "layer" && f.split_mode != "none" && n_dev == 0) {
        fail("-sm %s: no GPU or RPC device to split the model over", f.split_mode.c_str());
    }
    if (f.main_gpu < 0 || (f.main_gpu > 0 && size_t(f.main_gpu) >= n_dev)) {
        fail("-mg %d: there are %zu GPU/RPC devices (%s)", f.main_gpu, n_dev, device_names(offload_devices()).c_str());
    }
    params_.main_gpu = f.main_gpu;
    if (!f.tensor_split.empty()) {
        const auto parts = split_list(f.tensor_split, ",/");
        if (parts.size() > n_dev) {
            fail("-ts %s: %zu proportions for %zu GPU/RPC devices", f.tensor_split.c_str(), parts.size(), n_dev);
        }
        split_.assign(llama_max_devices(), 0.0f);
        for (size_t i = 0; i < parts.size(); i++) {
            char * end = nullptr;
            split_[i]  = std::strtof(parts[i].c_str(), &end);
            if (parts[i].empty() || *end != '\0' || !(split_[i] >= 0.0f)) {
                fail("-ts %s: '%s' is not a non-negative number", f.tensor_split.c_str(), parts[i].c_str());
            }
        }
        params_.tensor_split = split_.data();
    }
}

void warn_if_model_exceeds_memory(const LlamaFlags & f, const std::string & model_path, uint64_t model_bytes) {
    if (!f.repack && !f.no_mmap) return;  // mapped and not copied: the kernel pages it from the file
    const AvailableMemory m = available_memory();
    if (m.bytes == 0 || model_bytes <= m.bytes) return;
    const std::string copy = f.no_mmap ? "--no-mmap reads the whole file into memory"
                                       : "on the CPU llama.cpp repacks its quantized weights into memory of its own";
    log_warn(
        "%s (%s) is larger than the memory available (%s, %s): %s, which will not fit; use --no-repack%s to page the "
        "weights from the file (each micro-batch then reads most of the file: a larger -ub reads it less often), or "
        "with a GPU --cpu-moe / -ot, or --rpc across machines (docs/DISTRIBUTED.md)",
        model_path.c_str(), human_bytes(model_bytes).c_str(), human_bytes(m.bytes).c_str(), m.source.c_str(),
        copy.c_str(), f.no_mmap ? " without --no-mmap" : "");
}

void apply_context_flags(const LlamaFlags & f, llama_context_params & cp) {
    cp.n_threads       = f.n_threads > 0 ? f.n_threads : int(std::thread::hardware_concurrency());
    cp.n_threads_batch = f.n_threads_batch > 0 ? f.n_threads_batch : cp.n_threads;
    cp.type_k          = parse_cache_type(f.type_k);
    cp.type_v          = parse_cache_type(f.type_v);
    if (f.flash_attn == "on") {
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    } else if (f.flash_attn == "off") {
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    } else if (f.flash_attn == "auto") {
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    } else {
        fail("-fa %s: expected on, off or auto", f.flash_attn.c_str());
    }
}

}  // namespace reap
