#include "eval/task_output.h"

#include "core/error.h"

namespace reap {

std::string task_table(const std::vector<EvalRow> & rows, const std::vector<std::string> & names) {
    if (rows.empty() || rows.front().tasks.empty()) return "";
    std::string s = "\ntask accuracy, % +/- standard error (tasks scored; llama-perplexity's scoring)\n";
    s += strfmt("%-36s", "model");
    for (const TaskScore & t : rows.front().tasks)
        s += strfmt(" %26s", task_format_name(t.format));
    s += "\n";
    for (size_t i = 0; i < rows.size(); i++) {
        s += strfmt("%-36s", names[i].c_str());
        for (const TaskScore & t : rows[i].tasks) {
            const std::string cell =
                strfmt("%.2f +/- %.2f (%llu)", 100 * t.accuracy(), 100 * t.std_error(), (unsigned long long) t.n);
            s += strfmt(" %26s", cell.c_str());
        }
        s += "\n";
    }
    return s;
}

nlohmann::json task_json(const std::vector<TaskScore> & scores) {
    nlohmann::json o = nlohmann::json::object();
    for (const TaskScore & t : scores)
        o[task_format_name(t.format)] = {{"accuracy", t.accuracy()}, {"stderr", t.std_error()}, {"n", t.n}};
    return o;
}

}  // namespace reap
