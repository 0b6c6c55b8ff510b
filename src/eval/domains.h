// The held-out texts of `reap eval` (one per --data, a "domain"): how the command line names them
// and where each one's base logits live, and the per-model summary over all of them.
#pragma once

#include "eval/metrics.h"

#include <string>
#include <vector>

namespace reap {

struct EvalDomain {
    std::string name;         // NAME of --data NAME=FILE, else the file's base name without extension
    std::string file;         // the held-out text
    std::string base_logits;  // the base's log-probabilities on it: reused if there, else written (empty: a temporary)
};

// The domains of `--data [NAME=]FILE ...` and `--base-logits`: none (temporaries), one per --data
// (in order), or one folder (holding NAME.lgt per domain; created when missing, and used so
// whenever it is an existing folder). A --data argument that names an existing file is that file;
// else NAME=FILE. Names are letters, digits, '.', '_' and '-', and must differ. Throws on a bad
// name or a --base-logits count that fits neither rule (UsageError); creates nothing.
std::vector<EvalDomain> resolve_domains(const std::vector<std::string> & data,
                                        const std::vector<std::string> & base_logits);

// Creates the folder of every domain's base-logits file where it is missing (a --base-logits
// folder given for several domains); throws reap::Error naming it when it cannot.
void create_base_logits_folders(const std::vector<EvalDomain> & domains);

// A model's numbers over all domains: the mean, and the worst domain for each.
struct DomainSummary {
    double      mean_kl = 0, worst_kl = 0;
    std::string worst_kl_domain;
    double      mean_ppl_ratio = 0, worst_ppl_ratio = 0;
    double      mean_top1 = 0, worst_top1 = 0;
};
DomainSummary summarize_domains(const std::vector<DomainScore> & domains);

// The domain's score from a model's row on it; ppl_ratio is set against `base_ppl`.
DomainScore domain_score(const std::string & name, const EvalRow & row, double base_ppl);

}  // namespace reap
