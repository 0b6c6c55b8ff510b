// `reap synth --hf-out DIR`: the synthetic model as a Hugging Face folder, so the HF pruning
// route is tested without a model hub. The GGUF that write_model() made is read back, every
// tensor dequantized with ggml's type traits and written in BF16 (F32 for DeepSeek's
// e_score_correction_bias, as DeepSeek-V3 ships it) under the architecture's transformers names,
// laid out as llama.cpp's converter (conversion/*.py) expects to read it, with a config.json
// of the architecture's keys. Expert j of the HF folder is GGUF expert j: the converters stack
// experts in id order and none of these five reorders them (gpt-oss de-interleaves gate/up
// columns inside each expert, which the fused layout here re-interleaves).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace reap::synth {

enum class HfExperts {
    per_expert,  // one tensor per expert and projection (Qwen-MoE, DeepSeek, Mixtral, NemotronH)
    fused,       // 3-D gate_up_proj / down_proj with the expert axis first (transformers >= 5, gpt-oss)
};

struct HfOptions {
    HfExperts experts         = HfExperts::per_expert;
    uint64_t  shard_max_bytes = 0;  // > 0: model-0000k-of-0000n.safetensors shards of at most this much data
};

// Whether transformers saves architecture `arch` (GGUF name) in that expert layout.
bool      hf_has_layout(const std::string & arch, HfExperts e);
HfExperts parse_hf_experts(const std::string & s);  // "per-expert" / "fused"

// Checks, before anything is written, that a synth model of architecture `arch` written to
// `gguf_path` can then be written as the HF folder `dir` in `o`'s layout: an architecture with a
// transformers config, a layout transformers saves it in (usage errors), and a folder that may
// be written (not the GGUF, not an existing non-empty folder).
void check_hf_request(const std::string & arch, const std::string & gguf_path, const std::string & dir,
                      const HfOptions & o);

// Writes the GGUF `gguf_path` (a synth model) as the HF folder `dir` (made as a temporary folder
// and renamed into place; an existing non-empty `dir` is refused). Returns a summary.
nlohmann::json write_hf(const std::string & gguf_path, const std::string & dir, const HfOptions & o);

}  // namespace reap::synth
