// What tells one GGUF model from another by content, not by file name or size: two models of
// the same shape saved under the same name (another seed, another fine-tune) differ here, while
// a copy, a link or the same model split another way (gguf-split) do not.
#pragma once

#include "gguf/gguf_file.h"

#include <cstdint>
#include <string>

namespace reap {

// 64-bit FNV-1a over every key and value but the split.* bookkeeping, every tensor's name, type
// and shape, and a sample of every tensor's data: its first, middle and last 4 KiB (all of a
// smaller tensor). A few MB read however large the model; any fine-tune or reseed changes every
// tensor, so a sample tells them apart.
uint64_t model_content_id(const GgufFile & f);

// The same as 16 hex digits: how stats files, sweep folders and plans record it.
std::string model_content_id_text(const GgufFile & f);

}  // namespace reap
