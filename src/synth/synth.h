// `reap synth`: tiny mixture-of-experts GGUF models that llama.cpp loads and runs, with
// planted structure (dead, rare, weak and super experts) recorded in the file as ground truth.
#pragma once

#include "ggml.h"
#include "gguf/planted_keys.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace reap::synth {

struct Options {
    std::string arch          = "qwen3moe";  // GGUF general.architecture name
    int         n_layer       = 0;           // 0: the architecture's default
    int         n_embd        = 256;
    int         n_ff          = 256;  // expert FFN width
    int         n_expert      = 0;    // 0: the architecture's default
    int         n_expert_used = 0;    // 0: the architecture's default
    int         n_ctx_train   = 4096;
    ggml_type   type          = GGML_TYPE_Q8_0;  // weight matrices; norms, biases, routers stay F32
    uint64_t    seed          = 42;
    int         n_dead        = -1;  // planted experts per MoE layer; -1: n_expert / 8 (at least 1)
    int         n_rare        = -1;
    int         n_weak        = -1;
    int         n_super       = 0;  // planted super experts per MoE layer (rarely routed, one massive output channel)
    int         n_head        = 0;  // attention heads; 0: the architecture's default
    int         n_head_kv     = 0;  // key/value heads (builder layouts); 0: the architecture's default
    int         head_dim      = 0;  // key/value width per head (builder layouts); 0: n_embd / n_head
    int         n_group       = 0;  // expert groups (deepseek2); 0: 4 where they divide, else 2
    int         n_group_used  = 0;  // groups selected per token; 0: half of them
    int         experts_per_group = 0;  // grovemoe: routed experts per adjugate expert; 0: 2, as llama.cpp's converter
    bool        llama_builder     = false;  // lay out even the hand-written architectures with llama.cpp's builder
    std::string vocab;                      // tokenizer: "" the small built-in one, NAME or a vocab GGUF file
};

// The architectures with a hand-written tensor table (the tests' default models), every
// architecture `synth` can make (those plus every MoE architecture llama.cpp's model builder
// lays out: synth_hparams.h), and the weight types it accepts.
const std::vector<std::string> & architectures();
const std::vector<std::string> & all_architectures();
// Whether `o` is made from synth's own tensor table (the five architectures it had before
// llama.cpp's builder was public) rather than by llama_model_init_from_user.
bool                           uses_hand_written_layout(const Options & o);
const std::vector<ggml_type> & weight_types();

// Fills in the architecture defaults for the zero fields and checks the combination.
// Throws reap::Error with the reason when llama.cpp could not load such a model.
Options resolve(Options o);

// Writes the model atomically to `path`; returns a summary (architecture, sizes, planted
// experts per layer) that `reap synth` prints.
nlohmann::json write_model(const Options & o, const std::string & path);

// Metadata keys that hold the ground truth, per MoE layer (gguf/planted_keys.h).
using reap::planted_key;

}  // namespace reap::synth
