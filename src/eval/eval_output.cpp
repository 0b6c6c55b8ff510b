#include "eval/eval_output.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text.h"
#include "moe/inspect.h"

namespace reap {

std::string eval_table(const std::vector<EvalRow> & rows) {
    std::string s = strfmt("%-36s %11s %10s %10s %10s %8s %9s\n", "model", "size", "PPL", "KL mean", "KL p99", "top-1",
                           "tokens/s");
    for (const auto & r : rows) {
        const std::string speed = r.tokens_per_s > 0 ? strfmt("%.1f", r.tokens_per_s) : "-";
        s += strfmt("%-36s %11s %10.4f %10.6f %10.6f %8.4f %9s\n", r.model.c_str(), human_bytes(r.file_size).c_str(),
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, speed.c_str());
    }
    s += !rows.empty() && rows.front().second_half ? "PPL, KL and top-1 over the second half of every window (llama-perplexity's convention)\n"
                     : "PPL, KL and top-1 over every position of every window (--ppl-second-half: llama-perplexity's)\n";
    return s;
}

nlohmann::json eval_json(const std::vector<EvalRow> & rows) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto & r : rows) {
        a.push_back({{"model", r.model}, {"file_size", r.file_size}, {"ppl", r.ppl}, {"kl_mean", r.kl_mean},
                     {"kl_p99", r.kl_p99}, {"top1_agreement", r.top1},
                     {"tokens_per_s", r.tokens_per_s > 0 ? nlohmann::json(r.tokens_per_s) : nlohmann::json()},
                     {"tokens_scored", r.n_scored}, {"scored", r.second_half ? "second half" : "every position"}});
    }
    return a;
}

std::string eval_csv(const std::vector<EvalRow> & rows) {
    std::string s = "model,file_size,ppl,kl_mean,kl_p99,top1_agreement,tokens_per_s,tokens_scored,scored\n";
    for (const auto & r : rows) {
        const std::string speed = r.tokens_per_s > 0 ? strfmt("%.2f", r.tokens_per_s) : "";
        s += strfmt("\"%s\",%llu,%.6f,%.8f,%.8f,%.6f,%s,%llu,%s\n", r.model.c_str(), (unsigned long long) r.file_size,
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, speed.c_str(), (unsigned long long) r.n_scored,
                    r.second_half ? "second half" : "every position");
    }
    return s;
}

void check_table_path(const std::string & path) {
    if (!ends_with(path, ".json") && !ends_with(path, ".csv")) {
        fail("%s: the table is written as JSON or CSV: give -o a name ending in .json or .csv", path.c_str());
    }
}

void write_eval_table(const std::string & path, const std::vector<EvalRow> & rows) {
    check_table_path(path);
    write_file_atomic(path, ends_with(path, ".csv") ? eval_csv(rows) : eval_json(rows).dump(1) + "\n");
}

}  // namespace reap
