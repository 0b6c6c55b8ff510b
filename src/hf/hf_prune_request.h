// `reap prune -m MODEL_DIR`: the request of prune/prune_request.h on a Hugging Face folder. The
// plans come from the same code as for GGUF (plans_for_request on the checkpoint's MoeShape), so
// the same stats give the same experts in either format.
#pragma once

#include "prune/prune_request.h"

namespace reap {

PruneOutcome run_hf_prune(const PruneRequest & r);

}  // namespace reap
