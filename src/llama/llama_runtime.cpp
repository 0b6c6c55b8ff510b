#include "llama/llama_runtime.h"

#include "core/error.h"
#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"

#include <algorithm>

namespace reap {

ModelFiles model_files(const std::string & path) {
    const GgufFile file = GgufFile::open(path);
    return {file.split_paths(), file.file_size()};
}

LlamaRuntime open_llama(const std::string & model_path, const LlamaRuntimeOptions & o) {
    // Checked before the (slow) model load so that a typo fails at once.
    llama_context_params cp = llama_context_default_params();
    apply_context_flags(o, cp);

    // llama.cpp loads a split set from its first part only, and aborts (instead of failing) on
    // some hyperparameters: those are refused first.
    const ModelFiles    files = model_files(model_path);
    const std::string & first = files.first();
    check_llama_loadable(GgufFile::open(model_path));
    warn_if_model_exceeds_memory(o, model_path, files.size);

    llama_backend_init();
    const LlamaModelParams mp(o, model_path);
    LlamaRuntime           rt;
    rt.model.reset(llama_model_load_from_file(first.c_str(), mp.get()));
    if (!rt.model) {
        fail("%s: llama.cpp could not load the model", model_path.c_str());
    }

    cp.n_ctx   = o.n_ctx;
    cp.n_batch = o.n_batch;
    // Diffusion models (LLaDA-MoE, RND1) decode without causal attention through llama.cpp's
    // encoder path, which aborts on a batch larger than a micro-batch.
    cp.n_ubatch          = llama_model_is_diffusion(rt.model.get()) ? std::max(o.n_batch, o.n_ubatch) : o.n_ubatch;
    cp.n_seq_max         = o.n_seq_max;
    cp.kv_unified        = o.kv_unified;
    cp.no_perf           = true;
    cp.cb_eval           = o.cb_eval;
    cp.cb_eval_user_data = o.cb_eval_user_data;
    rt.ctx.reset(llama_init_from_model(rt.model.get(), cp));
    if (!rt.ctx) {
        fail("%s: llama.cpp could not create a context (n_ctx=%u, n_batch=%u)", model_path.c_str(), cp.n_ctx,
             cp.n_batch);
    }
    return rt;
}

LlamaModelPtr open_vocab(const std::string & model_path) {
    const std::string first = model_files(model_path).first();
    check_llama_loadable(GgufFile::open(model_path));
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only         = true;
    LlamaModelPtr model(llama_model_load_from_file(first.c_str(), mp));
    if (!model) fail("%s: llama.cpp could not load the model's vocabulary", model_path.c_str());
    return model;
}

}  // namespace reap
