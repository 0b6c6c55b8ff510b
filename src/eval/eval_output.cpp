#include "eval/eval_output.h"

#include "core/error.h"
#include "core/text.h"
#include "eval/domains.h"
#include "eval/generation.h"
#include "eval/task_output.h"

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

// The rows with domain `d`'s numbers at the top (speed only where the first domain measured it).
std::vector<EvalRow> rows_of_domain(const std::vector<EvalRow> & rows, size_t d) {
    std::vector<EvalRow> out = rows;
    for (auto & r : out) {
        const DomainScore & s = r.domains[d];
        r.ppl                 = s.ppl;
        r.kl_mean             = s.kl_mean;
        r.kl_p99              = s.kl_p99;
        r.top1                = s.top1;
        r.n_scored            = s.n_scored;
        r.timed               = r.timed && d == 0;
    }
    return out;
}

std::string metrics_table(const std::vector<std::string> & names, const std::vector<EvalRow> & rows) {
    std::string s =
        strfmt("%-36s %11s %10s %10s %10s %8s %9s\n", "model", "size", "PPL", "KL mean", "KL p99", "top-1", "tokens/s");
    for (size_t i = 0; i < rows.size(); i++) {
        const EvalRow &   r     = rows[i];
        const std::string speed = r.timed ? strfmt("%.1f", r.tokens_per_s) : "-";
        s += strfmt("%-36s %11s %10.4f %10.6f %10.6f %8.4f %9s\n", names[i].c_str(), human_bytes(r.file_size).c_str(),
                    r.ppl, r.kl_mean, r.kl_p99, r.top1, speed.c_str());
    }
    return s;
}

// With several domains: a table per domain, then each model's mean and worst over them.
std::string domains_text(const std::vector<std::string> & names, const std::vector<EvalRow> & rows) {
    std::string s;
    for (size_t d = 0; d < rows.front().domains.size(); d++) {
        s += strfmt("\n== domain %s\n", rows.front().domains[d].name.c_str());
        s += metrics_table(names, rows_of_domain(rows, d));
    }
    s += strfmt("\n== summary over %zu domains: KL mean, PPL / base PPL and top-1, mean and worst domain\n",
                rows.front().domains.size());
    s += strfmt("%-36s %11s %9s %9s %-14s %9s %9s %8s %8s\n", "model", "size", "mean KL", "worst KL", "(domain)",
                "PPL ratio", "worst", "top-1", "worst");
    for (size_t i = 0; i < rows.size(); i++) {
        const DomainSummary m = summarize_domains(rows[i].domains);
        s += strfmt("%-36s %11s %9.6f %9.6f %-14s %9.4f %9.4f %8.4f %8.4f\n", names[i].c_str(),
                    human_bytes(rows[i].file_size).c_str(), m.mean_kl, m.worst_kl, m.worst_kl_domain.c_str(),
                    m.mean_ppl_ratio, m.worst_ppl_ratio, m.mean_top1, m.worst_top1);
    }
    return s;
}

// With --prompts: the scores of the continuations, then the first few side by side.
std::string generation_text(const std::vector<std::string> & names, const std::vector<EvalRow> & rows) {
    const GenerationScore & base = *rows.front().generation;
    std::string s = strfmt("\n== generation: %zu prompts, greedy, up to %d tokens\n", base.n_prompts, base.n_tokens);
    s += "agreement: common prefix with the base's continuation / its length; match: same token at the same "
         "position; degeneration: share of continuations whose last half loops\n";
    s += strfmt("%-36s %9s %13s %10s %12s %10s\n", "model", "agreement", "prefix tokens", "match", "degeneration",
                "distinct-2");
    for (size_t i = 0; i < rows.size(); i++) {
        if (!rows[i].generation) continue;
        const GenerationScore & g = *rows[i].generation;
        s += strfmt("%-36s %9.4f %13.2f %10.4f %12.4f %10.4f\n", names[i].c_str(), g.agreement, g.agreement_tokens,
                    g.match_rate, g.degeneration, g.distinct2);
    }
    for (size_t k = 0; k < base.examples.size(); k++) {
        s += strfmt("\nprompt %zu: %s\n", k + 1, one_line(base.examples[k].prompt, 72, true).c_str());
        for (size_t i = 0; i < rows.size(); i++) {
            if (!rows[i].generation || rows[i].generation->examples.size() <= k) continue;
            s += strfmt("  %-34s | %s\n", names[i].c_str(),
                        one_line(rows[i].generation->examples[k].text, 96, false).c_str());
        }
    }
    return s;
}

nlohmann::json domains_json(const EvalRow & r) {
    nlohmann::json d = nlohmann::json::object();
    for (const auto & x : r.domains) {
        d[x.name] = {{"ppl", x.ppl},   {"kl_mean", x.kl_mean},     {"kl_p99", x.kl_p99},
                     {"top1", x.top1}, {"ppl_ratio", x.ppl_ratio}, {"tokens_scored", x.n_scored}};
    }
    return d;
}

nlohmann::json generation_json(const GenerationScore & g) {
    nlohmann::json examples = nlohmann::json::array();
    for (const auto & e : g.examples)
        examples.push_back({{"prompt", e.prompt}, {"continuation", e.text}});
    return {{"agreement", g.agreement},   {"agreement_tokens", g.agreement_tokens},
            {"match_rate", g.match_rate}, {"degeneration", g.degeneration},
            {"distinct2", g.distinct2},   {"prompts", g.n_prompts},
            {"gen_tokens", g.n_tokens},   {"examples", examples}};
}

// The CSV columns after today's: the summary over domains, each domain's, the generation's.
std::string csv_extra_header(const EvalRow & first) {
    std::string s;
    if (!first.domains.empty())
        s += ",worst_kl,worst_kl_domain,domains_mean_kl,domains_mean_ppl_ratio,domains_worst_ppl_ratio,"
             "domains_mean_top1,domains_worst_top1";
    for (const auto & d : first.domains) {
        for (const char * col : {"ppl", "ppl_ratio", "kl_mean", "kl_p99", "top1"})
            s += "," + d.name + ":" + col;
    }
    if (first.generation) s += ",gen_agreement,gen_agreement_tokens,gen_match_rate,gen_degeneration,gen_distinct2";
    return s;
}

std::string csv_extra_cells(const EvalRow & r) {
    const DomainSummary m = summarize_domains(r.domains);
    std::string         s;
    if (!r.domains.empty())
        s += strfmt(",%.8f,%s,%.8f,%.6f,%.6f,%.6f,%.6f", m.worst_kl, m.worst_kl_domain.c_str(), m.mean_kl,
                    m.mean_ppl_ratio, m.worst_ppl_ratio, m.mean_top1, m.worst_top1);
    for (const auto & d : r.domains)
        s += strfmt(",%.6f,%.6f,%.8f,%.8f,%.6f", d.ppl, d.ppl_ratio, d.kl_mean, d.kl_p99, d.top1);
    if (r.generation) {
        const GenerationScore & g = *r.generation;
        s += strfmt(",%.6f,%.4f,%.6f,%.6f,%.6f", g.agreement, g.agreement_tokens, g.match_rate, g.degeneration,
                    g.distinct2);
    }
    return s;
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
    s += rows.front().domains.size() > 1 ? domains_text(names, rows) : metrics_table(names, rows);
    if (rows.front().generation) s += generation_text(names, rows);
    return s + task_table(rows, names);
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
        if (!r.domains.empty()) {
            const DomainSummary m               = summarize_domains(r.domains);
            a.back()["domains"]                 = domains_json(r);
            a.back()["worst_kl"]                = m.worst_kl;
            a.back()["worst_kl_domain"]         = m.worst_kl_domain;
            a.back()["domains_mean_kl"]         = m.mean_kl;
            a.back()["domains_mean_ppl_ratio"]  = m.mean_ppl_ratio;
            a.back()["domains_worst_ppl_ratio"] = m.worst_ppl_ratio;
            a.back()["domains_mean_top1"]       = m.mean_top1;
            a.back()["domains_worst_top1"]      = m.worst_top1;
        }
        if (r.generation) a.back()["generation"] = generation_json(*r.generation);
        if (!r.tasks.empty()) a.back()["tasks"] = task_json(r.tasks);
    }
    return a;
}

std::string eval_csv(const std::vector<EvalRow> & rows, PplConvention convention) {
    const auto  names = row_names(rows);
    std::string s     = "model,file_size,ppl,kl_mean,kl_p99,top1_agreement,tokens_per_s,tokens_scored,ppl_convention" +
                    (rows.empty() ? std::string() : csv_extra_header(rows.front())) + "\n";
    for (size_t i = 0; i < rows.size(); i++) {
        const EvalRow &   r     = rows[i];
        const std::string speed = r.timed ? strfmt("%.2f", r.tokens_per_s) : "";
        s += strfmt("%s,%llu,%.6f,%.8f,%.8f,%.6f,%s,%llu,%s", csv_quoted(names[i]).c_str(),
                    (unsigned long long) r.file_size, r.ppl, r.kl_mean, r.kl_p99, r.top1, speed.c_str(),
                    (unsigned long long) r.n_scored, ppl_convention_name(convention));
        s += csv_extra_cells(r) + "\n";
    }
    return s;
}

std::string eval_output_for(const std::string & path, const std::vector<EvalRow> & rows, PplConvention convention) {
    // The text in the rows is valid UTF-8 where it is made (eval/generation.h); a path given on
    // the command line may not be: replaced (U+FFFD) rather than the whole run's table lost.
    if (ends_with(path, ".json"))
        return eval_json(rows, convention).dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (ends_with(path, ".csv")) return eval_csv(rows, convention);
    return eval_table(rows, convention);
}

}  // namespace reap
