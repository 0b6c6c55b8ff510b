// The safetensors container: round trip, metadata kept, and every malformed file refused at
// open with one line naming the file.
#include "core/error.h"
#include "hf/safetensors.h"
#include "support.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace reap;

namespace {

// A file with this JSON header (padded to 8 bytes) and `data_bytes` bytes of data.
std::string write_raw(const std::string & dir, const std::string & header, size_t data_bytes,
                      const char * name = "x.safetensors") {
    std::string h = header;
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string file(8, '\0');
    for (int i = 0; i < 8; i++)
        file[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xff);
    file += h;
    file.append(data_bytes, '\x01');
    const std::string path = dir + "/" + name;
    test::write_bytes(path, file.data(), file.size());
    return path;
}

// The error opening `path` gives (empty when it opens).
std::string open_error(const std::string & path) {
    try {
        SafetensorsFile::open(path);
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Safetensors, RoundTripKeepsDataShapesAndMetadata) {
    const std::string        dir = test::tmp_dir();
    std::vector<StOutTensor> ts  = {
         {"a.weight", "BF16", {3, 5}, 30}, {"b", "F32", {7}, 28},  {"c_blocks", "U8", {2, 2, 16}, 64},
         {"d", "F8_E4M3", {4}, 4},         {"e", "F4", {2, 3}, 3}, {"empty", "F16", {0, 4}, 0}};
    const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "kept"}};
    {
        SafetensorsWriter w(dir + "/m.safetensors", ts, meta);
        for (const auto & t : ts) {
            std::vector<uint8_t> b(t.nbytes);
            for (size_t i = 0; i < b.size(); i++)
                b[i] = uint8_t(i * 7 + t.name.size());
            w.write(b.data(), b.size());
        }
        w.finish();
    }
    const SafetensorsFile f = SafetensorsFile::open(dir + "/m.safetensors");
    EXPECT_EQ(f.metadata(), meta);
    ASSERT_EQ(f.tensors().size(), ts.size());
    EXPECT_EQ(f.data_start() % 8, 0u);  // header padded as the safetensors library writes it
    for (const auto & t : ts) {
        const StTensor * r = f.find(t.name);
        ASSERT_NE(r, nullptr) << t.name;
        EXPECT_EQ(r->dtype, t.dtype);
        EXPECT_EQ(r->shape, t.shape);
        ASSERT_EQ(r->nbytes, t.nbytes);
        std::vector<uint8_t> b(t.nbytes);
        f.read(*r, 0, b.data(), b.size());
        for (size_t i = 0; i < b.size(); i++)
            ASSERT_EQ(b[i], uint8_t(i * 7 + t.name.size())) << t.name;
    }
}

// The header can be padded (with spaces, as the format allows) to start the data at a given
// offset within a k_copy_alignment block; the file reads the same.
TEST(Safetensors, HeaderPaddingPlacesTheDataInAPage) {
    const std::string dir = test::tmp_dir();
    for (uint32_t at : {0u, 8u, 1000u, 4088u, k_copy_alignment - 8}) {
        const std::string path = dir + "/p" + std::to_string(at) + ".safetensors";
        {
            SafetensorsWriter w(path, {{"a", "F32", {2}, 8}}, {{"format", "pt"}}, at);
            const float       v[2] = {1.5f, -2.0f};
            w.write(v, sizeof v);
            w.finish();
        }
        const SafetensorsFile f = SafetensorsFile::open(path);
        EXPECT_EQ(f.data_start() % k_copy_alignment, at);
        float v[2];
        f.read(*f.find("a"), 0, v, sizeof v);
        EXPECT_EQ(v[0], 1.5f);
        EXPECT_EQ(v[1], -2.0f);
    }
}

TEST(Safetensors, WriterRefusesMissingOrExtraBytes) {
    const std::string dir = test::tmp_dir();
    SafetensorsWriter w(dir + "/m.safetensors", {{"a", "F32", {2}, 8}}, {});
    const uint8_t     z[16] = {};
    EXPECT_THROW(w.write(z, 16), Error);
    w.write(z, 4);
    EXPECT_THROW(w.finish(), Error);
}

TEST(Safetensors, MalformedFilesAreRefusedNamingTheFile) {
    const std::string dir = test::tmp_dir();
    struct Case {
        const char * what;
        std::string  path;
        const char * says;
    };
    const std::string tiny = dir + "/tiny.safetensors";
    test::write_bytes(tiny, "\x05\0\0", 3);
    std::string long_len(8, '\0');
    long_len[0]           = char(0xff);
    long_len[1]           = char(0xff);
    const std::string big = dir + "/len.safetensors";
    test::write_bytes(big, (long_len + "{}").data(), 10);
    const std::vector<Case> cases = {
        {"truncated header", tiny, "truncated safetensors header"},
        {"header longer than the file", big, "larger than the file"},
        {"not JSON", write_raw(dir, "{\"a\":", 0, "j.safetensors"), "not valid JSON"},
        {"overlap",
         write_raw(
             dir,
             R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
             24, "o.safetensors"),
         "overlap"},
        {"out of range",
         write_raw(dir, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, "r.safetensors"), "outside"},
        {"dtype the bytes cannot hold",
         write_raw(dir, R"({"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,16]}})", 16, "d.safetensors"), "needs 8"},
        {"unknown dtype",
         write_raw(dir, R"({"a":{"dtype":"Q4_K","shape":[4],"data_offsets":[0,16]}})", 16, "u.safetensors"),
         "not a safetensors dtype"},
        {"negative offset",
         write_raw(dir, R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 16, "n.safetensors"),
         "non-negative"},
        {"bad metadata", write_raw(dir, R"({"__metadata__":{"a":1}})", 0, "m.safetensors"), "not a string"},
        {"huge shape",
         write_raw(dir, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16,
                   "h.safetensors"),
         "impossible shape"},
    };
    for (const auto & c : cases) {
        const std::string e = open_error(c.path);
        EXPECT_NE(e.find(c.path + ": "), std::string::npos) << c.what << ": " << e;
        EXPECT_NE(e.find(c.says), std::string::npos) << c.what << ": " << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << c.what;
    }
}
