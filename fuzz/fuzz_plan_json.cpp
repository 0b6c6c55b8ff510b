// The plan file reader (what prune --plan loads) and the check against a model, round trip; the
// same bytes as a pruned HF folder's reap_prune.json (hf/hf_pruning_record.h).
#include "core/error.h"
#include "core/fs_util.h"
#include "fuzz_input.h"
#include "hf/hf_pruning_record.h"
#include "prune/planner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string path = reap::fuzz::write_input("plan.json", data, size);
    // A grouped model with an MTP layer, so that every rule of check_plan is reachable.
    reap::MoeShape shape;
    shape.arch            = "deepseek2";
    shape.n_layer         = 4;
    shape.n_expert        = 16;
    shape.n_expert_used   = 4;
    shape.n_expert_groups = 4;
    shape.n_group_used    = 2;
    shape.moe_layers      = {0, 1, 2};
    shape.nextn_layers    = {3};
    try {
        const reap::Plan p = reap::Plan::load(path);
        (void) p.to_json().dump();
        reap::check_plan(p, shape, path);
    } catch (const reap::Error &) {}
    try {
        (void) reap::hf_pruning_record_from_json(reap::read_json_file(path, "pruning record"), path);
    } catch (const reap::Error &) {}
    return 0;
}
