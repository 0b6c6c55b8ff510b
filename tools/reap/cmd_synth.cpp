#include "commands.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "prune/prune_request.h"
#include "synth/synth.h"
#include "synth/synth_hf.h"
#include "synth/synth_presets.h"

#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

namespace reap::cli {

namespace {
struct HfOut {
    std::string dir, layout = "per-expert", shard_size;
};
void list_architectures(const synth::Options & o) {
    for (const auto & a : synth::all_architectures()) {
        synth::Options q = o;
        q.arch           = a;
        std::printf("%-16s %s\n", a.c_str(),
                    synth::uses_hand_written_layout(q) ? "hand-written tensor table" : "llama.cpp model builder");
    }
    for (const auto & p : synth::presets()) {
        std::printf("preset %-16s %s\n", p.name.c_str(), p.about.c_str());
    }
}

void write(const synth::Options & o, const std::string & out, const std::string & hf_dir, const synth::HfOptions & ho,
           bool json) {
    auto s = synth::write_model(o, out);
    if (!hf_dir.empty()) {
        s["hf"] = synth::write_hf(out, hf_dir, ho);
    }
    if (json) {
        std::printf("%s\n", s.dump(2).c_str());
        return;
    }
    std::printf("wrote %s: %s, %d layers (MoE: %zu), %d experts (%d per token), %s weights, %.1fM parameters\n",
                out.c_str(), s["architecture"].get<std::string>().c_str(), s["n_layer"].get<int>(),
                s["moe_layers"].size(), s["n_expert"].get<int>(), s["n_expert_used"].get<int>(),
                s["weight_type"].get<std::string>().c_str(), double(s["n_params"].get<uint64_t>()) / 1e6);
    if (s.contains("hf")) {
        std::printf("wrote %s: Hugging Face folder, %s experts, %zu shard(s)\n", hf_dir.c_str(),
                    s["hf"]["layout"].get<std::string>().c_str(), s["hf"]["shards"].get<size_t>());
    }
}

}  // namespace

void add_synth(CLI::App & app, CommandRun & run) {
    auto   o      = std::make_shared<synth::Options>();
    auto   out    = std::make_shared<std::string>();
    auto   type   = std::make_shared<std::string>("Q8_0");
    auto   json   = std::make_shared<bool>(false);
    auto   list   = std::make_shared<bool>(false);
    auto   preset = std::make_shared<std::string>();
    auto   hf     = std::make_shared<HfOut>();
    auto * cmd =
        app.add_subcommand("synth", "generate a tiny MoE GGUF with planted dead, rare, weak and super experts");
    cmd->add_option("-o,--output", *out, "output GGUF file (required unless --list)");
    cmd->add_flag("--list", *list, "print the architectures and presets synth makes, then exit");
    std::string preset_help =
        "a released model's shape with random weights (--layers, --type, --seed, --vocab and "
        "the planted counts still apply):";
    for (const auto & p : synth::presets()) {
        preset_help += "\n  " + p.name + ": " + p.about;
    }
    cmd->add_option("--preset", *preset, preset_help);
    cmd->add_option("--arch", o->arch, "architecture (GGUF general.architecture)")
        ->check(CLI::IsMember(synth::all_architectures()));
    cmd->add_option("--layers", o->n_layer, "number of layers (0: architecture default)");
    cmd->add_option("--n-embd", o->n_embd, "embedding width (multiple of 64)");
    cmd->add_option("--n-ff", o->n_ff, "expert FFN width");
    cmd->add_option("--n-expert", o->n_expert, "experts per MoE layer (0: architecture default)");
    cmd->add_option("--n-expert-used", o->n_expert_used, "experts per token (0: architecture default)");
    cmd->add_option("--n-head", o->n_head, "attention heads (0: architecture default)");
    cmd->add_flag("--llama-builder", o->llama_builder,
                  "lay out the hand-written architectures too with llama.cpp's model builder");
    cmd->add_option("--vocab", o->vocab,
                    "tokenizer from a vocab GGUF: NAME (llama.cpp's models/ggml-vocab-NAME.gguf: qwen2, llama-bpe, "
                    "deepseek-llm, gpt-2, phi-3, ...) or a file (default: a small built-in one)");
    cmd->add_option("--ctx-train", o->n_ctx_train, "trained context length written to the file");
    // synth's own list (synth::weight_types), named as llama-quantize names them: F32, Q4_K.
    auto type_name = [](ggml_type t) {
        std::string n = ggml_type_name(t);
        for (auto & c : n)
            c = char(std::toupper((unsigned char) c));
        return n;
    };
    std::vector<std::string> type_names;
    for (ggml_type t : synth::weight_types()) {
        type_names.push_back(type_name(t));
    }
    cmd->add_option("--type", *type, "weight type of the matrices")->check(CLI::IsMember(type_names));
    cmd->add_option("-s,--seed", o->seed, "random seed (same seed, same file)");
    cmd->add_option("--dead", o->n_dead, "dead experts per MoE layer (-1: n_expert/8)");
    cmd->add_option("--rare", o->n_rare, "rarely routed experts per MoE layer (-1: n_expert/8)");
    cmd->add_option("--weak", o->n_weak, "often routed, low-output experts per MoE layer (-1: n_expert/8)");
    cmd->add_option("--super", o->n_super,
                    "super experts per MoE layer: rarely routed (often where the weak experts fill every slot), one "
                    "output channel ~50x the others' (arXiv 2507.23279); recorded as reap.synth.layer.<il>.super and "
                    ".super_channel");
    cmd->add_flag("--json", *json, "print the summary as JSON");
    cmd->add_option("--hf-out", hf->dir,
                    "also write the model as a Hugging Face folder (BF16 safetensors, config.json)");
    cmd->add_option("--hf-layout", hf->layout, "expert tensors of --hf-out: per-expert or fused")
        ->check(CLI::IsMember({"per-expert", "fused"}));
    cmd->add_option("--hf-shard-size", hf->shard_size,
                    "shard --hf-out into model-0000k-of-0000n.safetensors of at most this much data (e.g. 500M); "
                    "\"\": one model.safetensors");
    cmd->callback([=, &run]() {
        if (*list) {
            run = [o]() { list_architectures(*o); };
            return;
        }
        if (!preset->empty()) {
            // The preset's shape; the options that do not change it still apply.
            synth::Options p = synth::preset_options(*preset);
            if (cmd->count("--layers")) p.n_layer = o->n_layer;
            if (cmd->count("--vocab")) p.vocab = o->vocab;
            p.seed   = o->seed;
            p.n_dead = o->n_dead, p.n_rare = o->n_rare, p.n_weak = o->n_weak, p.n_super = o->n_super;
            *o = p;
        }
        if (out->empty()) throw CLI::RequiredError("--output");
        for (ggml_type t : synth::weight_types()) {
            if (*type == type_name(t)) o->type = t;
        }
        // Every option is checked before -o is written: a failure leaves no file behind. -o (and
        // --hf-out) must not replace the --vocab model, nor each other.
        refuse_clashing_outputs({*out, hf->dir}, {o->vocab});
        synth::HfOptions ho;
        if (!hf->dir.empty()) {
            ho.experts         = synth::parse_hf_experts(hf->layout);
            ho.shard_max_bytes = parse_split_size(hf->shard_size, "--hf-shard-size");
            synth::check_hf_request(o->arch, *out, hf->dir, ho);
        }
        (void) synth::resolve(*o);  // every size and combination, before any work
        run = [=]() { write(*o, *out, hf->dir, ho, *json); };
    });
}

}  // namespace reap::cli
