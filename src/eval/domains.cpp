#include "eval/domains.h"

#include "core/error.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace reap {

namespace fs = std::filesystem;

namespace {

bool valid_name(const std::string & n) {
    if (n.empty()) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-';
    });
}

EvalDomain parse_data(const std::string & spec) {
    EvalDomain      d;
    const size_t    eq = spec.find('=');
    std::error_code ec;
    if (eq != std::string::npos && !fs::is_regular_file(spec, ec)) {
        d.name = spec.substr(0, eq);
        d.file = spec.substr(eq + 1);
        if (!valid_name(d.name) || d.file.empty()) {
            fail_usage("--data %s: NAME=FILE needs a NAME of letters, digits, '.', '_', '-' and a FILE", spec.c_str());
        }
        return d;
    }
    d.file = spec;
    d.name = fs::path(spec).stem().string();
    if (!valid_name(d.name)) {
        fail_usage("--data %s: the name '%s' has characters other than letters, digits, '.', '_', '-'; give NAME=%s",
                   spec.c_str(), d.name.c_str(), spec.c_str());
    }
    return d;
}

}  // namespace

std::vector<EvalDomain> resolve_domains(const std::vector<std::string> & data,
                                        const std::vector<std::string> & base_logits) {
    if (data.empty()) fail_usage("give the held-out text: --data [NAME=]FILE (one per domain)");
    std::vector<EvalDomain> out;
    std::set<std::string>   names;
    for (const auto & spec : data) {
        out.push_back(parse_data(spec));
        if (!names.insert(out.back().name).second) {
            fail_usage("--data: two domains named '%s'; name them apart with NAME=FILE", out.back().name.c_str());
        }
    }
    std::error_code ec;
    const bool      folder = base_logits.size() == 1 && (data.size() > 1 || fs::is_directory(base_logits[0], ec));
    if (folder) {
        if (fs::exists(base_logits[0], ec) && !fs::is_directory(base_logits[0], ec)) {
            fail_usage("--base-logits %s: a file, but %zu --data need a folder (or one --base-logits per --data)",
                       base_logits[0].c_str(), data.size());
        }
        for (auto & d : out)
            d.base_logits = (fs::path(base_logits[0]) / (d.name + ".lgt")).string();
    } else if (base_logits.size() == data.size()) {
        for (size_t i = 0; i < out.size(); i++)
            out[i].base_logits = base_logits[i];
    } else if (!base_logits.empty()) {
        fail_usage("%zu --base-logits for %zu --data: give one folder, or one file per --data", base_logits.size(),
                   data.size());
    }
    return out;
}

void create_base_logits_folders(const std::vector<EvalDomain> & domains) {
    for (const auto & d : domains) {
        if (d.base_logits.empty()) continue;
        const fs::path  dir = fs::path(d.base_logits).parent_path();
        std::error_code ec;
        if (dir.empty() || fs::is_directory(dir, ec)) continue;
        fs::create_directories(dir, ec);
        if (ec) fail("--base-logits %s: cannot create the folder (%s)", dir.c_str(), ec.message().c_str());
    }
}

DomainSummary summarize_domains(const std::vector<DomainScore> & domains) {
    DomainSummary s;
    if (domains.empty()) return s;
    s.worst_top1 = 1;
    for (const auto & d : domains) {
        s.mean_kl += d.kl_mean;
        s.mean_ppl_ratio += d.ppl_ratio;
        s.mean_top1 += d.top1;
        if (s.worst_kl_domain.empty() || d.kl_mean > s.worst_kl) {
            s.worst_kl        = d.kl_mean;
            s.worst_kl_domain = d.name;
        }
        s.worst_ppl_ratio = std::max(s.worst_ppl_ratio, d.ppl_ratio);
        s.worst_top1      = std::min(s.worst_top1, d.top1);
    }
    const double n = double(domains.size());
    s.mean_kl /= n;
    s.mean_ppl_ratio /= n;
    s.mean_top1 /= n;
    return s;
}

DomainScore domain_score(const std::string & name, const EvalRow & row, double base_ppl) {
    DomainScore d;
    d.name      = name;
    d.ppl       = row.ppl;
    d.kl_mean   = row.kl_mean;
    d.kl_p99    = row.kl_p99;
    d.top1      = row.top1;
    d.ppl_ratio = base_ppl > 0 ? row.ppl / base_ppl : 0;
    d.n_scored  = row.n_scored;
    return d;
}

}  // namespace reap
