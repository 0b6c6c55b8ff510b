#include "synth/vocab_import.h"

#include "core/error.h"
#include "core/text.h"
#include "gguf/gguf_writer.h"

#include <cstdlib>
#include <filesystem>

namespace reap::synth {

namespace fs = std::filesystem;

std::string vocab_dir() {
    std::error_code ec;
    const char *    env = std::getenv("REAP_LLAMA_SOURCE");
    for (const char * root : {env, static_cast<const char *>(REAP_LLAMA_SOURCE_DIR)}) {
        if (root != nullptr && *root != '\0' && fs::is_directory(fs::path(root) / "models", ec)) {
            return (fs::path(root) / "models").string();
        }
    }
    return "";
}

std::string find_vocab(const std::string & name_or_file) {
    std::error_code ec;
    if (fs::is_regular_file(name_or_file, ec)) {
        return name_or_file;
    }
    if (name_or_file.find('/') != std::string::npos || ends_with(name_or_file, ".gguf")) {
        fail("%s: no such vocabulary file", name_or_file.c_str());
    }
    const std::string dir = vocab_dir();
    if (dir.empty()) {
        fail(
            "synth: --vocab %s: llama.cpp's source tree (models/ggml-vocab-*.gguf) was not found; set "
            "REAP_LLAMA_SOURCE or pass a vocab GGUF file",
            name_or_file.c_str());
    }
    const std::string path = dir + "/ggml-vocab-" + name_or_file + ".gguf";
    if (!fs::is_regular_file(path, ec)) {
        fail("%s: no such vocabulary (see %s/ggml-vocab-*.gguf)", path.c_str(), dir.c_str());
    }
    return path;
}

uint32_t import_vocab(gguf_context * ctx, const std::string & name_or_file) {
    const std::string path = find_vocab(name_or_file);
    GgufContextPtr    src(gguf_init_from_file(path.c_str(), {true, nullptr}));
    if (!src) {
        fail("%s: not a readable GGUF file", path.c_str());
    }
    // Everything but the tokenizer keys goes: the vocab file's own architecture and shape.
    GgufContextPtr keep(gguf_init_empty());
    gguf_set_kv(keep.get(), src.get());
    for (int64_t i = gguf_get_n_kv(keep.get()) - 1; i >= 0; i--) {
        const std::string key = gguf_get_key(keep.get(), i);
        if (!starts_with(key, "tokenizer.")) {
            gguf_remove_key(keep.get(), key.c_str());
        }
    }
    const int64_t tokens = gguf_find_key(keep.get(), "tokenizer.ggml.tokens");
    if (tokens < 0 || gguf_get_kv_type(keep.get(), tokens) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(keep.get(), tokens) != GGUF_TYPE_STRING || gguf_get_arr_n(keep.get(), tokens) == 0) {
        fail("%s: no tokenizer.ggml.tokens array: not a vocabulary", path.c_str());
    }
    gguf_set_kv(ctx, keep.get());
    return uint32_t(gguf_get_arr_n(keep.get(), tokens));
}

}  // namespace reap::synth
