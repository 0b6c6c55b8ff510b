// The sweep's models one at a time: a pruned point (prune through prune_request) and a quantized
// point (llama/quantize), each made, or with --resume reused when the file already there is that
// model (the same kept experts of the same source, the same type, an importance matrix or none).
#pragma once

#include "stats/criteria.h"
#include "sweep/sweep.h"

#include <optional>
#include <string>
#include <vector>

namespace reap {

// One pruned (or merged) model of the sweep.
struct SweepPoint {
    Criterion   criterion;
    double      prune_ratio;
    std::string path;
    std::string merge_method{};  // "": pruned by `criterion`; else merged by this method
};

// What names the point in files, sweep.json's "criterion" and the curves: the criterion, or the
// merging method.
std::string point_label(const SweepPoint & p);

// One quantized model: the base (source_point none) or a pruned point, to one type.
struct QuantPoint {
    std::optional<size_t> source_point;  // index into the pruned points; none: the base
    std::string           type;          // canonical name of llama/quantize.h's table
    std::string           path;
};

// Prunes one point, or with --resume reuses the file already there when it holds the same plan.
// `imatrix`: the base's importance matrix to cut with the model for its quantized points ("": none).
void prune_point(const SweepOptions & o, const std::vector<std::string> & stats, const SweepPoint & p,
                 const std::string & imatrix);

// Quantizes one point from `source`, or with --resume reuses the file already there when it is
// this type of this source; `noted_requantize`: whether the requantizing note was given already.
void quantize_point(const SweepOptions & o, const QuantPoint & q, const std::string & source,
                    const std::string & imatrix_path, bool & noted_requantize);

}  // namespace reap
