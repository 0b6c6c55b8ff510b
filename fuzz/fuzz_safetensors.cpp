// Hugging Face folder reader: safetensors header, expert layout analysis and inspect, on a
// fixed qwen3moe config.json (4 experts). A hostile file must end in reap::Error (one line),
// never in a crash or an unbounded allocation. Seeds are model.safetensors files of synthetic
// models (reap synth --hf-out, per-expert and fused).
#include "core/error.h"
#include "core/log.h"
#include "fuzz_input.h"
#include "hf/hf_model.h"
#include "moe/inspect.h"
#include "prune/model_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    reap::log_init(reap::LogLevel::none);
    static const char config[] =
        R"({"architectures": ["Qwen3MoeForCausalLM"], "num_experts": 4, "num_experts_per_tok": 2,)"
        R"( "num_hidden_layers": 1})";
    reap::fuzz::write_input("config.json", reinterpret_cast<const uint8_t *>(config), sizeof(config) - 1);
    reap::fuzz::write_input("model.safetensors", data, size);
    try {
        (void) reap::inspect_text(reap::model_report(reap::HfModel(reap::fuzz::scratch_dir())));
    } catch (const reap::Error &) {}
    return 0;
}
