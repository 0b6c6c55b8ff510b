// GGUF -> Hugging Face names, shapes and values for the synthetic architectures: the inverse of
// llama.cpp's converters (conversion/qwen.py, llama.py, deepseek.py, gpt_oss.py, nemotron.py
// with gguf-py's tensor_mapping.py) for the tensors `reap synth` makes.
#pragma once

#include "gguf/gguf_file.h"
#include "synth/synth_hf.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace reap::synth {

// Dequantized GGUF tensors (ggml order, ne[0] fastest), the last few kept.
class GgufValues {
public:
    explicit GgufValues(const GgufFile & f) : f_(f) {}
    const std::vector<float> & get(const std::string & name);
    const TensorInfo &         info(const std::string & name) const;

private:
    const GgufFile &                          f_;
    std::map<std::string, std::vector<float>> cache_;
};

// One HF tensor: name, shape (outermost first), dtype, and how its values are made.
struct HfPiece {
    std::string                                             name;
    std::vector<uint64_t>                                   shape;
    std::string                                             dtype;  // "BF16" or "F32"
    std::function<void(GgufValues &, std::vector<float> &)> fill;

    uint64_t n_elements() const {
        uint64_t n = 1;
        for (uint64_t d : shape)
            n *= d;
        return n;
    }
};

// Every HF tensor of the model, in GGUF tensor order. Throws for a tensor it cannot name.
std::vector<HfPiece> hf_pieces(const GgufFile & f, HfExperts experts);

// config.json of the model, from the GGUF's keys.
nlohmann::ordered_json hf_config(const GgufFile & f);

}  // namespace reap::synth
