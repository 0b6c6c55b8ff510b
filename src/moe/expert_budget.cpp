#include "moe/expert_budget.h"

#include "core/error.h"

#include <cmath>

namespace reap {

uint32_t kept_per_chunk(const MoeShape & m, uint32_t kept) {
    const uint32_t g = m.experts_per_chunk;
    if (g == 0 || kept == 0) return 0;
    for (uint32_t per = g; per >= 1; per--) {
        // llama.cpp sums hparams' experts-per-token outputs of the adjugate block too, so it
        // needs at least that many adjugate experts.
        if (kept % per == 0 && kept / per <= m.n_chunk() && kept / per >= m.n_expert_used) return per;
    }
    return 0;
}

std::vector<uint32_t> kept_chunks(const std::vector<uint32_t> & kept, uint32_t experts_per_chunk) {
    std::vector<uint32_t> chunks;
    for (uint32_t e : kept)
        if (chunks.empty() || chunks.back() != e / experts_per_chunk) chunks.push_back(e / experts_per_chunk);
    return chunks;
}

std::string kept_count_problem(const MoeShape & m, uint32_t kept) {
    if (kept == 0 || kept > m.n_expert) {
        return strfmt("cannot keep %u of %u experts", kept, m.n_expert);
    }
    const uint32_t used = m.n_expert_used;
    if (kept < used) {
        return strfmt("keeping %u experts is below the %u experts used per token (%s.expert_used_count)", kept, used,
                      m.arch.c_str());
    }
    if (m.experts_per_chunk > 0 && kept_per_chunk(m, kept) == 0) {
        return strfmt(
            "keeping %u experts: %u adjugate experts serve groups of %u (%s.experts_per_group); no equal number per "
            "kept group makes %u with at least %u groups (experts per token)",
            kept, m.n_chunk(), m.experts_per_chunk, m.arch.c_str(), kept, m.n_expert_used);
    }
    if (m.n_expert_groups > 1) {
        const uint32_t g = m.n_expert_groups;
        if (kept % g != 0) {
            return strfmt("keeping %u experts: with %u expert groups the kept count must be a multiple of %u", kept, g,
                          g);
        }
        if (kept / g < 2) {
            return strfmt("keeping %u experts leaves %u per group; grouped routing needs at least 2 per group", kept,
                          kept / g);
        }
        if (uint64_t(m.n_group_used) * (kept / g) < used) {
            return strfmt("keeping %u experts: %u groups x %u experts per group cannot supply %u experts per token",
                          kept, m.n_group_used, kept / g, used);
        }
    }
    return "";
}

void check_kept_count(const MoeShape & m, uint32_t kept) {
    const std::string why = kept_count_problem(m, kept);
    if (!why.empty()) {
        fail("%s", why.c_str());
    }
}

uint32_t round_kept_count(const MoeShape & m, double keep_ratio) {
    if (!(keep_ratio > 0.0 && keep_ratio <= 1.0)) {
        fail("keep ratio %g is outside (0, 1]", keep_ratio);
    }
    uint32_t       kept = uint32_t(std::lround(double(m.n_expert) * keep_ratio));
    const uint32_t g    = m.groups();
    if (g > 1) {
        // Each group keeps the same number of experts: round to the nearest multiple.
        kept = uint32_t(std::lround(double(kept) / g)) * g;
    }
    if (kept == 0) kept = g;
    // GroveMoE: the nearest count its adjugate groups can hold (prefer fewer on a tie).
    for (uint32_t d = 0; m.experts_per_chunk > 0 && d < m.n_expert; d++) {
        if (kept > d && kept_per_chunk(m, kept - d) > 0) return kept - d;
        if (kept + d <= m.n_expert && kept_per_chunk(m, kept + d) > 0) return kept + d;
    }
    return kept;
}

uint32_t kept_count_for_ratio(const MoeShape & m, double keep_ratio) {
    const uint32_t kept = round_kept_count(m, keep_ratio);
    check_kept_count(m, kept);
    return kept;
}

}  // namespace reap
