// llama.cpp's runtime flags, with llama.cpp's names and meanings: the one definition that
// `reap profile` and `reap eval` share (tools/reap/llama_flags_cli.cpp registers them), and
// their translation into llama_model_params / llama_context_params.
//
// A flag this build of llama.cpp cannot honour (-ngl without a GPU or RPC device, --rpc
// without the RPC backend, an unknown -dev or -ot buffer type) is refused in one line instead
// of being ignored. Devices are found through ggml-backend's public registry.
#pragma once

#include "llama.h"

#include <list>
#include <string>
#include <vector>

namespace reap {

struct LlamaFlags {
    int         n_gpu_layers    = -1;     // layers on GPU/RPC devices; <0: all (llama.cpp's default)
    int         n_threads       = 0;      // 0: all cores
    int         n_threads_batch = 0;      // 0: as n_threads
    std::string type_k          = "f16";  // KV cache types by ggml name
    std::string type_v          = "f16";
    std::string flash_attn      = "auto";  // on, off, auto
    bool        no_mmap         = false;   // read the model into memory instead of mapping it
    bool        mlock           = false;   // keep the model in RAM
    // Repack quantized weights into the CPU backend's faster layouts (llama.cpp's --repack /
    // -nr --no-repack, llama_model_params.use_extra_bufts): a second copy of those weights in
    // anonymous memory, which a model larger than the RAM does not have room for.
    bool                     repack = true;
    std::vector<std::string> override_tensor;       // PATTERN=BUFTYPE[,...] (-ot, repeatable)
    bool                     cpu_moe   = false;     // all expert tensors in CPU memory
    int                      n_cpu_moe = 0;         // expert tensors of the first N layers in CPU memory
    std::vector<std::string> devices;               // -dev: device names, or "none"
    std::string              split_mode = "layer";  // none, layer, row, tensor
    std::string              tensor_split;          // -ts: proportions "3,1" (or "3/1")
    int                      main_gpu = 0;
    std::vector<std::string> rpc;  // HOST:PORT of rpc-server processes
};

// Registers --rpc servers with ggml-backend (once per endpoint and process); throws when this
// build of llama.cpp has no RPC backend.
void add_rpc_servers(const std::vector<std::string> & endpoints);
// Connects to an rpc-server's HOST:PORT within `timeout_ms` and hangs up: "" when it answers,
// else why not ("expected HOST:PORT", a resolver error, "cannot connect: Connection refused").
std::string rpc_endpoint_problem(const std::string & endpoint, int timeout_ms);

// The llama_model_params of `flags`, with the storage the params point into (devices, tensor
// buffer overrides, tensor split). Resolves names against ggml-backend's registry and refuses
// what the build cannot do; `what` names the model in errors.
class LlamaModelParams {
public:
    LlamaModelParams(const LlamaFlags & flags, const std::string & what);
    LlamaModelParams(const LlamaModelParams &)             = delete;
    LlamaModelParams & operator=(const LlamaModelParams &) = delete;

    const llama_model_params & get() const { return params_; }

private:
    void set_devices(const LlamaFlags & f);
    void set_overrides(const LlamaFlags & f);
    void set_split(const LlamaFlags & f);

    llama_model_params                            params_;
    std::vector<ggml_backend_dev_t>               devices_;
    std::list<std::string>                        patterns_;  // stable c_str() for overrides_
    std::vector<llama_model_tensor_buft_override> overrides_;
    std::vector<float>                            split_;
};

// Before loading `model_path` of `model_bytes`: one warning when it is larger than the memory
// available (core/system_memory.h) and the flags copy it into memory (repack, --no-mmap), naming
// what happens and the remedies. A warning, not a refusal: the kernel may still page it.
void warn_if_model_exceeds_memory(const LlamaFlags & flags, const std::string & model_path, uint64_t model_bytes);

// Sets threads, flash attention and the KV cache types of `flags` on `cp`.
void apply_context_flags(const LlamaFlags & flags, llama_context_params & cp);

// "f16", "q8_0", ... -> the ggml type; throws for a type llama.cpp cannot use for the KV cache.
ggml_type parse_cache_type(const std::string & name);

// The GPU-like devices (GPU, integrated GPU, RPC) registered with ggml-backend.
std::vector<ggml_backend_dev_t> offload_devices();

}  // namespace reap
