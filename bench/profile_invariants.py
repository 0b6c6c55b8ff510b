#!/usr/bin/python3
"""The profile invariants of tests/test_profile.cpp (InvariantsAndPlantedStructure) on a stats
file made anywhere (bench/gpu.sh: on a GPU, with -ngl 99 or --n-cpu-moe), and its closeness to a
reference run of the same model and data (the CPU's): a GPU's float order can flip a near tie in
the router, so counts may differ by a few routings and sums by float noise, not more.

  profile_invariants.py SYNTH_SUMMARY.json STATS.json [REFERENCE_STATS.json]

SYNTH_SUMMARY.json is `reap synth --json`'s output for the model (its MoE layers, experts per
token and planted experts). Prints one line per failed check and exits 1, or one "ok" line.
"""
import json
import sys


def layers_of(stats):
    return {int(k): v for k, v in stats.items() if not k.startswith("_")}


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else 0.0


def check(summary, stats, ref):
    bad = []
    layers = layers_of(stats)
    k = summary["n_expert_used"]
    tokens = stats["_meta"]["tokens"]
    if sorted(layers) != sorted(summary["moe_layers"]):
        bad.append(f"MoE layers {sorted(layers)} != the model's {summary['moe_layers']}")
    for il, L in sorted(layers.items()):
        where = f"layer {il}"
        total = L["total_tokens"]
        counts = L["activation_counts"]
        if total != tokens:
            bad.append(f"{where}: {total} tokens, the run had {tokens}")
        if sum(counts) != total * k:
            bad.append(f"{where}: {sum(counts)} routings, expected {total} x {k}")
        gates = sum(L["gate_sum"]) / max(1, total)
        if abs(gates - 1.0) > 1e-3:
            bad.append(f"{where}: applied gate weights sum to {gates:.6f} per token, expected 1")
        planted = summary["planted"].get(str(il), {})
        special = set(planted.get("dead", [])) | set(planted.get("rare", [])) | set(planted.get("weak", []))
        ean = L["ean_mean"]
        freq = L["activation_frequency"]
        healthy = [ean[e] for e in range(len(ean)) if e not in special and counts[e] > 0]
        m = median(healthy)
        for e in planted.get("dead", []):
            if ean[e] >= 0.01 * m:
                bad.append(f"{where}: dead expert {e} has EAN {ean[e]:.4g} (healthy median {m:.4g})")
        for e in planted.get("rare", []):
            if counts[e] > 0.01 * total:
                bad.append(f"{where}: rare expert {e} routed {counts[e]} times of {total}")
        for e in planted.get("weak", []):
            if ean[e] >= 0.2 * m or freq[e] <= 0.05:
                bad.append(f"{where}: weak expert {e}: EAN {ean[e]:.4g}, frequency {freq[e]:.3f}")
    if ref is not None:
        rl = layers_of(ref)
        if ref["_meta"]["tokens"] != tokens:
            bad.append(f"{tokens} tokens, the reference run had {ref['_meta']['tokens']}")
        for il, L in sorted(layers.items()):
            R = rl.get(il)
            if R is None:
                continue
            moved = sum(abs(a - b) for a, b in zip(L["activation_counts"], R["activation_counts"]))
            if moved > 0.01 * sum(R["activation_counts"]):
                bad.append(f"layer {il}: {moved} routings differ from the reference (more than 1 %)")
            for key in ("gate_sum", "ean_sum", "reap_sum"):
                a, b = sum(L[key]), sum(R[key])
                if abs(a - b) > 1e-2 * max(1.0, abs(b)):
                    bad.append(f"layer {il}: {key} totals {a:.6g} vs the reference's {b:.6g}")
    return bad


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    summary = json.load(open(sys.argv[1]))
    stats = json.load(open(sys.argv[2]))
    ref = json.load(open(sys.argv[3])) if len(sys.argv) == 4 else None
    bad = check(summary, stats, ref)
    for line in bad:
        print(line)
    if bad:
        sys.exit(1)
    n = len(layers_of(stats))
    print(f"ok: {n} MoE layers, {stats['_meta']['tokens']} tokens, invariants hold"
          + (" and within 1 % of the reference" if ref is not None else ""))


if __name__ == "__main__":
    main()
