#include "eval/eval_output.h"

#include "core/error.h"
#include "core/text.h"
#include "moe/inspect.h"

#include <map>

namespace reap {

namespace {

// "a/b/c.gguf", 2 -> "b/c.gguf"; the whole path when it has fewer components.
std::string path_suffix(const std::string & path, size_t components) {
    size_t at = path.size();
    for (size_t i = 0; i < components; i++) {
        const size_t slash = at == 0 ? std::string::npos : path.rfind('/', at - 1);
        if (slash == std::string::npos) return path;
        at = slash;
    }
    return path.substr(at + 1);
}

std::vector<std::string> row_names(const std::vector<EvalRow> & rows) {
    std::vector<std::string> paths;
    for (const auto & r : rows)
        paths.push_back(r.path);
    return unique_model_names(paths);
}

std::string convention_line(PplConvention c) {
    return c == PplConvention::all
               ? "PPL, KL and top-1 over every position of each window (--ppl-convention all)"
               : "PPL, KL and top-1 over the second half of each window, as llama-perplexity (--ppl-convention "
                 "second-half)";
}

}  // namespace

std::vector<std::string> unique_model_names(const std::vector<std::string> & paths) {
    std::vector<size_t> depth(paths.size(), 1);
    for (bool changed = true; changed;) {
        changed = false;
        std::map<std::string, std::vector<size_t>> by_name;
        for (size_t i = 0; i < paths.size(); i++)
            by_name[path_suffix(paths[i], depth[i])].push_back(i);
        for (const auto & [name, who] : by_name) {
            for (size_t i : who) {
                bool clash = false;  // the same model given twice is no clash
                for (size_t j : who)
                    clash = clash || paths[j] != paths[i];
                if (clash && path_suffix(paths[i], depth[i]) != paths[i]) {
                    depth[i]++;
                    changed = true;
                }
            }
        }
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < paths.size(); i++)
        out.push_back(path_suffix(paths[i], depth[i]));
    return out;
}

std::string eval_table(const std::vector<EvalRow> & rows, PplConvention convention) {
    const auto  names = row_names(rows);
    std::string s     = convention_line(convention) + "\n";
    s +=
        strfmt("%-36s %11s %10s %10s %10s %8s %9s\n", "model", "size", "PPL", "KL mean", "KL p99", "top-1", "tokens/s");
    for (size_t i = 0; i < rows.size(); i++) {
        const EvalRow &   r     = rows[i];
        const std::string speed = r.timed ? strfmt("%.1f", r.tokens_per_s) : "-";
        s += strfmt("%-36s %11s %10.4f %10.6f %10.6f %8.4f %9s\n", names[i].c_str(), human_bytes(r.file_size).c_str(),
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, speed.c_str());
    }
    return s;
}

nlohmann::json eval_json(const std::vector<EvalRow> & rows, PplConvention convention) {
    const auto     names = row_names(rows);
    nlohmann::json a     = nlohmann::json::array();
    for (size_t i = 0; i < rows.size(); i++) {
        const EvalRow & r = rows[i];
        a.push_back({{"model", names[i]},
                     {"path", r.path},
                     {"file_size", r.file_size},
                     {"ppl", r.ppl},
                     {"kl_mean", r.kl_mean},
                     {"kl_p99", r.kl_p99},
                     {"top1_agreement", r.top1},
                     {"tokens_per_s", r.timed ? nlohmann::json(r.tokens_per_s) : nlohmann::json(nullptr)},
                     {"tokens_scored", r.n_scored},
                     {"ppl_convention", ppl_convention_name(convention)}});
    }
    return a;
}

std::string eval_csv(const std::vector<EvalRow> & rows, PplConvention convention) {
    const auto  names = row_names(rows);
    std::string s     = "model,file_size,ppl,kl_mean,kl_p99,top1_agreement,tokens_per_s,tokens_scored,ppl_convention\n";
    for (size_t i = 0; i < rows.size(); i++) {
        const EvalRow &   r     = rows[i];
        const std::string speed = r.timed ? strfmt("%.2f", r.tokens_per_s) : "";
        s += strfmt("%s,%llu,%.6f,%.8f,%.8f,%.6f,%s,%llu,%s\n", csv_quoted(names[i]).c_str(),
                    (unsigned long long) r.file_size, r.ppl, r.kl_mean, r.kl_p99, r.top1, speed.c_str(),
                    (unsigned long long) r.n_scored, ppl_convention_name(convention));
    }
    return s;
}

std::string eval_output_for(const std::string & path, const std::vector<EvalRow> & rows, PplConvention convention) {
    if (ends_with(path, ".json")) return eval_json(rows, convention).dump(1) + "\n";
    if (ends_with(path, ".csv")) return eval_csv(rows, convention);
    return eval_table(rows, convention);
}

}  // namespace reap
