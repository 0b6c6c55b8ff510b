/* LD_PRELOAD shim for tests/engine_selfcheck.sh: an engine whose forward pass dies of SIGILL, as
 * one built for another CPU does. Only llama_decode is replaced; loading is the real llama.cpp. */
#include <signal.h>

struct llama_context;
struct llama_batch;

int llama_decode(struct llama_context * ctx, struct llama_batch * batch);

int llama_decode(struct llama_context * ctx, struct llama_batch * batch) {
    (void) ctx;
    (void) batch;
    raise(SIGILL);
    return -1;
}
