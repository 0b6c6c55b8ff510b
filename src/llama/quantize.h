// A GGUF quantized to one of llama-quantize's types through llama.cpp's public
// `llama_model_quantize` (llama.h): the step after `reap prune`, and the sweep's quantized points.
//
// The type names and their llama_ftype are llama-quantize's table (tools/quantize/quantize.cpp),
// matched case-insensitively; an importance matrix (gguf/imatrix_file.h) is handed over as
// llama-quantize hands its file over: per matrix, in_sum2 / count for every column (1 where
// the count is 0). An input already quantized is requantized (llama-quantize's
// --allow-requantize) with a one-line note. Types whose blocks do not fit a row fall back as
// llama-quantize's do (llama.cpp decides: a 256-block K-quant on 128-wide rows becomes the
// 32-block type its table names, Q4_K -> Q5_0, Q6_K -> Q8_0; IQ4_XS -> IQ4_NL). The output is
// written to a temporary beside it and renamed into place; an output that is the input is
// refused.
#pragma once

#include "gguf/imatrix_file.h"

#include <string>
#include <vector>

namespace reap {

struct QuantType {
    const char * name;   // "Q4_K_M"
    int          ftype;  // llama_ftype
    const char * desc;   // llama-quantize's description
};

// llama-quantize's table, in its order.
const std::vector<QuantType> & quant_types();

// The table's entry for `name` (any case); throws UsageError "<option>: '<name>' is not a type
// of llama-quantize: Q4_0, ..." naming every valid one.
const QuantType & parse_quant_type(const std::string & name, const char * option = "--quant");

struct QuantizeRequest {
    std::string     input;                   // GGUF (a split set: its first part)
    std::string     output;                  // single GGUF file
    std::string     type;                    // a name of quant_types()
    const Imatrix * imatrix = nullptr;       // none: quantize without an importance matrix
    std::string     imatrix_name;            // recorded in the output as llama-quantize records its file
    int             n_threads       = 0;     // 0: every core
    bool            note_requantize = true;  // the one-line note when the input is already quantized
};

struct QuantizeOutcome {
    bool        requantized = false;  // the input held quantized tensors
    std::string fallback;             // llama.cpp's line when some tensors fell back to another type
};

// Whether a GGUF holds quantized weights (any tensor of a type ggml counts as quantized).
bool is_quantized_gguf(const std::string & path);

// The importance matrix as llama_model_quantize takes it: per entry, n_mat rows of n_cols means
// (float(in_sum2) / float(count), 1 where the count is 0), exactly llama-quantize's conversion.
std::vector<std::pair<std::string, std::vector<float>>> imatrix_means(const Imatrix & m);

// Throws reap::Error naming `imatrix_name` when `m` is not an importance matrix of the GGUF `model`
// (gguf/imatrix_prune.h check_imatrix_for_model: the one rule; another model's, or the unpruned
// model's for a pruned one): llama.cpp would skip an entry of no weight silently.
void check_imatrix_fits(const Imatrix & m, const std::string & imatrix_name, const std::string & model);

// Quantizes `r.input` to `r.output` (the importance matrix checked by check_imatrix_fits first). Throws reap::Error naming the file and llama.cpp's reason.
QuantizeOutcome quantize_model(const QuantizeRequest & r);

}  // namespace reap
