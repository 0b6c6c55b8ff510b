#include "hf/hf_pruning_record.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"

#include <climits>
#include <cmath>
#include <filesystem>

namespace reap {

namespace {

using nlohmann::json;

// Strict reads of a record's JSON; errors name the file and the field.
struct RecordReader {
    const std::string & origin;

    [[noreturn]] void bad(const std::string & what) const {
        fail("%s: not a valid pruning record (%s)", origin.c_str(), what.c_str());
    }
    const json & at(const json & o, const char * key, const std::string & where) const {
        if (!o.is_object() || !o.contains(key)) bad(where + "no \"" + key + "\"");
        return o.at(key);
    }
    std::string text(const json & v, const std::string & what) const {
        if (!v.is_string()) bad(what + " must be a string");
        return v.get<std::string>();
    }
    uint32_t u32(const json & v, const std::string & what) const {
        const bool ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
        if (!ok || v.get<uint64_t>() > UINT32_MAX) bad(what + " must be an integer from 0 to 4294967295");
        return uint32_t(v.get<uint64_t>());
    }
    uint32_t expert(const json & v, const std::string & what, uint32_t n_expert) const {
        const uint32_t e = u32(v, what);
        if (e >= n_expert) bad(strfmt("%s %u is not below n_expert_original %u", what.c_str(), e, n_expert));
        return e;
    }
    int layer(const std::string & key) const {
        uint64_t il = 0;
        if (!parse_canonical_uint(key, INT_MAX, il)) bad("layer key \"" + key + "\" is not a layer index");
        return int(il);
    }
    std::vector<uint32_t> kept(const json & a, const std::string & where, uint32_t n_expert) const {
        if (!a.is_array()) bad(where + " kept must be an array of expert ids");
        std::vector<uint32_t> out;
        for (const json & v : a) {
            out.push_back(expert(v, where + " kept expert", n_expert));
            if (out.size() > 1 && out.back() <= out[out.size() - 2]) bad(where + " kept ids are not ascending");
        }
        return out;
    }
    std::vector<Slot> slots(const json & a, const std::string & where, const std::vector<uint32_t> & kept,
                            uint32_t n_expert) const {
        if (!a.is_array()) bad(where + " slots must be an array");
        if (a.size() != kept.size())
            bad(strfmt("%s has %zu slots for %zu kept experts", where.c_str(), a.size(), kept.size()));
        std::vector<Slot> out;
        for (const json & sl : a) {
            const json & src = at(sl, "sources", where + " slot: ");
            if (!src.is_array() || src.empty()) bad(where + ": a slot's sources must be a non-empty array");
            Slot s;
            for (const json & so : src) {
                const json & w = at(so, "weight", where + " source: ");
                if (!w.is_number() || !std::isfinite(w.get<double>()))
                    bad(where + ": a source's weight must be a finite number");
                s.sources.push_back(
                    SlotSource{expert(at(so, "expert", where + " source: "), where + " source expert", n_expert),
                               w.get<double>()});
            }
            if (s.sources[0].expert != kept[out.size()]) {
                bad(strfmt("%s slot %zu starts with expert %u, not its kept expert %u", where.c_str(), out.size(),
                           s.sources[0].expert, kept[out.size()]));
            }
            out.push_back(std::move(s));
        }
        return out;
    }
};

}  // namespace

std::string hf_pruning_record_text(const Plan & plan, const std::string & source_dir, uint32_t n_expert_original,
                                   const std::vector<std::string> & left_out) {
    nlohmann::ordered_json j;
    j["tool"]                   = std::string("reap.cpp ") + REAP_VERSION;
    j["date"]                   = iso_utc_now();
    j["source"]                 = source_dir;
    j["n_expert_original"]      = n_expert_original;
    j["n_expert"]               = plan.expert_count();
    nlohmann::ordered_json kept = nlohmann::ordered_json::object();
    for (const auto & [il, lp] : plan.layers)
        kept[std::to_string(il)] = lp.kept;
    j["kept"] = kept;
    if (!plan.merge.empty()) {
        // A merged plan: its slots are more than its kept ids.
        j["merge"] = {
            {"method", plan.merge.method}, {"align", plan.merge.align}, {"group_size", plan.merge.group_size}};
        nlohmann::ordered_json slots = nlohmann::ordered_json::object();
        for (const auto & [il, lp] : plan.layers) {
            nlohmann::ordered_json layer = nlohmann::ordered_json::array();
            for (const Slot & s : lp.slots) {
                nlohmann::ordered_json src = nlohmann::ordered_json::array();
                for (const SlotSource & so : s.sources)
                    src.push_back({{"expert", so.expert}, {"weight", so.weight}});
                layer.push_back({{"sources", src}});
            }
            slots[std::to_string(il)] = layer;
        }
        j["slots"] = slots;
    }
    j["plan"] = plan.to_json();
    if (!left_out.empty()) j["left_out"] = left_out;  // unpruned weight files
    return j.dump(1) + "\n";
}

PruningRecord hf_pruning_record_from_json(const json & j, const std::string & origin) {
    const RecordReader r{origin};
    if (!j.is_object()) r.bad("a record is a JSON object");
    PruningRecord rec;
    rec.source            = base_name(r.text(r.at(j, "source", ""), "source"));
    rec.n_expert_original = r.u32(r.at(j, "n_expert_original", ""), "n_expert_original");
    const json & plan     = r.at(j, "plan", "");
    rec.criterion         = r.text(r.at(plan, "criterion", "plan: "), "plan criterion");
    if (plan.contains("stats")) rec.stats = base_name(r.text(plan["stats"], "plan stats"));
    if (j.contains("merge")) {
        const json & m   = j["merge"];
        rec.merge.method = r.text(r.at(m, "method", "merge: "), "merge method");
        if (rec.merge.method.empty()) r.bad("merge method is empty");
        if (m.contains("align")) rec.merge.align = r.text(m["align"], "merge align");
        if (m.contains("group_size")) rec.merge.group_size = r.u32(m["group_size"], "merge group_size");
    }
    if (j.contains("slots") != !rec.merge.empty()) r.bad("\"slots\" without \"merge\", or \"merge\" without \"slots\"");
    const json & kept = r.at(j, "kept", "");
    if (!kept.is_object() || kept.empty()) r.bad("kept must be an object of layer -> kept ids");
    if (!rec.merge.empty() && (!j["slots"].is_object() || j["slots"].size() != kept.size())) {
        r.bad("slots must be an object with the layers of kept");
    }
    for (auto it = kept.begin(); it != kept.end(); ++it) {
        const int                   il    = r.layer(it.key());
        const std::string           where = "layer " + it.key();
        const std::vector<uint32_t> ids   = r.kept(it.value(), where, rec.n_expert_original);
        std::vector<Slot> &         slots = rec.slots[il];
        if (rec.merge.empty()) {
            for (uint32_t e : ids)
                slots.push_back(Slot{{SlotSource{e, 1.0}}});
        } else {
            slots = r.slots(r.at(j["slots"], it.key().c_str(), "slots: "), where, ids, rec.n_expert_original);
        }
    }
    return rec;
}

std::optional<PruningRecord> read_hf_pruning_record(const std::string & dir) {
    const std::string path = dir + "/" + k_hf_prune_record;
    std::error_code   ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    return hf_pruning_record_from_json(read_json_file(path, "pruning record"), path);
}

}  // namespace reap
