#include "eval/eval_output.h"

#include "core/error.h"
#include "moe/inspect.h"

namespace reap {

std::string eval_table(const std::vector<EvalRow> & rows) {
    std::string s = strfmt("%-36s %11s %10s %10s %10s %8s %9s\n", "model", "size", "PPL", "KL mean", "KL p99", "top-1",
                           "tokens/s");
    for (const auto & r : rows) {
        s += strfmt("%-36s %11s %10.4f %10.6f %10.6f %8.4f %9.1f\n", r.model.c_str(), human_bytes(r.file_size).c_str(),
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, r.tokens_per_s);
    }
    return s;
}

nlohmann::json eval_json(const std::vector<EvalRow> & rows) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto & r : rows) {
        a.push_back({{"model", r.model}, {"file_size", r.file_size}, {"ppl", r.ppl}, {"kl_mean", r.kl_mean},
                     {"kl_p99", r.kl_p99}, {"top1_agreement", r.top1}, {"tokens_per_s", r.tokens_per_s},
                     {"tokens_scored", r.n_scored}});
    }
    return a;
}

std::string eval_csv(const std::vector<EvalRow> & rows) {
    std::string s = "model,file_size,ppl,kl_mean,kl_p99,top1_agreement,tokens_per_s,tokens_scored\n";
    for (const auto & r : rows) {
        s += strfmt("\"%s\",%llu,%.6f,%.8f,%.8f,%.6f,%.2f,%llu\n", r.model.c_str(), (unsigned long long) r.file_size,
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, r.tokens_per_s, (unsigned long long) r.n_scored);
    }
    return s;
}

}  // namespace reap
