/* engine_selfcheck: does the llama.cpp we are about to link against run on this machine?
 *
 *   engine_selfcheck MODEL.gguf
 *
 * Loads MODEL (the committed tiny MoE model), evaluates an 8-token prompt on every core and then
 * decodes 4 tokens greedily: the same kernels reap's profile and eval use (matrix products of the
 * model's quantized type, the MoE path), on as many threads as they would use. Prints one line
 * and exits 0 when that works, 1 when the engine reports an error; an engine built for another
 * CPU (or with kernels this kernel does not allow, such as the pinned release's AMX path) dies
 * here by a signal, and scripts/setup.sh reports it before anything else is built on top.
 *
 * Plain C over llama.h only, so that setup compiles it in a second against any prefix.
 */
#include <stdio.h>
#include <unistd.h>

#include "llama.h"

static void quiet_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void) user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static llama_token greedy(struct llama_context * ctx, int32_t n_vocab) {
    const float * logits = llama_get_logits_ith(ctx, -1);
    llama_token   best   = 0;
    for (llama_token t = 1; t < n_vocab; ++t) {
        if (logits[t] > logits[best]) {
            best = t;
        }
    }
    return best;
}

int main(int argc, char ** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet_log, NULL);
    llama_backend_init();

    struct llama_model_params mparams = llama_model_default_params();
    struct llama_model *      model   = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) {
        fprintf(stderr, "engine_selfcheck: cannot load %s\n", argv[1]);
        return 1;
    }
    long n_cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cores < 1) {
        n_cores = 1;
    }
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx                       = 64;
    cparams.n_batch                     = 64;
    cparams.n_ubatch                    = 64;
    cparams.n_threads                   = (int32_t) n_cores;
    cparams.n_threads_batch             = (int32_t) n_cores;
    struct llama_context * ctx          = llama_init_from_model(model, cparams);
    if (ctx == NULL) {
        fprintf(stderr, "engine_selfcheck: cannot create a context for %s\n", argv[1]);
        llama_model_free(model);
        return 1;
    }
    const struct llama_vocab * vocab   = llama_model_get_vocab(model);
    const int32_t              n_vocab = llama_vocab_n_tokens(vocab);

    llama_token prompt[8];
    for (int i = 0; i < 8; ++i) {
        prompt[i] = (llama_token) ((i * 37 + 11) % n_vocab);
    }
    int rc = llama_decode(ctx, llama_batch_get_one(prompt, 8));
    for (int i = 0; rc == 0 && i < 4; ++i) {
        llama_token next = greedy(ctx, n_vocab);
        rc               = llama_decode(ctx, llama_batch_get_one(&next, 1));
    }
    if (rc != 0) {
        fprintf(stderr, "engine_selfcheck: llama_decode failed (%d)\n", rc);
    } else {
        printf("engine_selfcheck: decoded 12 tokens on %ld threads\n", n_cores);
    }
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return rc == 0 ? 0 : 1;
}
