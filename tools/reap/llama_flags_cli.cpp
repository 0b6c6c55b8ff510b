// llama.cpp's runtime flags on a sub-command: the one registration shared by profile and eval.
#include "commands.h"
#include "llama/llama_flags.h"

#include <cstdlib>

namespace reap::cli {

namespace {

// A thread count may come from the environment, where a bad value is hard to trace back: the
// message names both places it can come from.
CLI::Validator thread_count(const std::string & flag, const std::string & env) {
    return CLI::Validator(
        [flag, env](std::string & value) -> std::string {
            char *     end = nullptr;
            const long n   = std::strtol(value.c_str(), &end, 10);
            if (value.empty() || *end != '\0' || n < 0 || n > 4096) {
                return "'" + value + "' (from " + flag + " or " + env +
                       ") is not a thread count (0 to 4096; 0: all cores)";
            }
            return "";
        },
        "N");
}

}  // namespace

void add_llama_flags(CLI::App & cmd, LlamaFlags & f) {
    // The environment names are llama.cpp's own (its common argument parser reads the same ones),
    // so one setting caps the threads of reap and of llama.cpp's tools alike.
    cmd.add_option("-t,--threads", f.n_threads, "CPU threads (0: all cores)")
        ->envname("LLAMA_ARG_THREADS")
        ->check(thread_count("--threads", "LLAMA_ARG_THREADS"));
    cmd.add_option("--threads-batch", f.n_threads_batch, "CPU threads for batches (alias -tb; 0: as -t)")
        ->envname("LLAMA_ARG_THREADS_BATCH")
        ->check(thread_count("--threads-batch", "LLAMA_ARG_THREADS_BATCH"));
    // CLI11 reads the environment of every sub-command whether it runs or not, unless the
    // sub-command has its own parse-complete callback: then only the command that runs reads it.
    cmd.parse_complete_callback([] {});
    cmd.add_option("--n-gpu-layers", f.n_gpu_layers,
                   "layers on GPU/RPC devices (alias -ngl; -1: all, as llama.cpp; refused on a CPU-only build)");
    cmd.add_option("--type-k", f.type_k, "KV cache type for K (alias -ctk)");
    cmd.add_option("--type-v", f.type_v, "KV cache type for V (alias -ctv)");
    cmd.add_option("--flash-attn", f.flash_attn, "flash attention: on, off, auto (alias -fa)")
        ->check(CLI::IsMember({"on", "off", "auto"}));
    cmd.add_flag("--no-mmap", f.no_mmap, "read the model into memory instead of mapping it");
    cmd.add_flag("--mlock", f.mlock, "keep the model in RAM (no swapping)");
    cmd.add_flag("--repack,!--no-repack", f.repack,
                 "repack quantized weights into the CPU's faster layouts (a copy in memory; default: on); "
                 "--no-repack (alias -nr): use them where they are mapped, for a model larger than the RAM");
    cmd.add_option("--override-tensor", f.override_tensor,
                   "PATTERN=BUFTYPE[,...]: tensors whose name matches the regex go to that buffer type, e.g. "
                   "exps=CPU (alias -ot; repeatable)");
    cmd.add_flag("--cpu-moe", f.cpu_moe, "keep all expert tensors in CPU memory (alias -cmoe)");
    cmd.add_option("--n-cpu-moe", f.n_cpu_moe,
                   "keep the expert tensors of the first N layers in CPU memory (alias -ncmoe)")
        ->check(CLI::NonNegativeNumber);
    cmd.add_option("--device", f.devices, "comma-separated devices to offload to, or none (alias -dev)")
        ->delimiter(',');
    cmd.add_option("--split-mode", f.split_mode,
                   "how to split the model across devices: none, layer, row, tensor (alias -sm)")
        ->check(CLI::IsMember({"none", "layer", "row", "tensor"}));
    cmd.add_option("--tensor-split", f.tensor_split, "proportions of the model per device, e.g. 3,1 (alias -ts)");
    cmd.add_option("--main-gpu", f.main_gpu, "the device for the whole model with -sm none (alias -mg)");
    cmd.add_option("--rpc", f.rpc,
                   "HOST:PORT[,...] of llama.cpp rpc-server processes to offload layers to (see docs/DISTRIBUTED.md)")
        ->delimiter(',');
}

}  // namespace reap::cli
