// pyannote_dump.hpp: write and read the harness's dumps from C++17 (standard library only).
//
// The layout and names are dumps/README.md's; the Python side is port/dumps.py, and
// what this header writes is byte-identical to it (npy 1.0 and text arrays, manifest).
//
//   #include "pyannote_dump.hpp"
//   namespace pd = pyannote_dump;
//
//   // read pyannote's own inputs for a stage (npy or txt, whichever was dumped)
//   pd::Reader reference("dumps/reference/sample");
//   pd::Array log_probs = reference.load("03-segmentation", "out_log_probs");
//   std::vector<float> x = log_probs.as<float>();   // log_probs.shape == {C, F, 7}
//
//   // write your outputs; nothing appears under dumps/myport/sample until commit()
//   pd::Writer out("dumps", "myport", "sample");            // or pd::Format::txt
//   out.write("04-multilabel", "out_multilabel", multilabel, {C, F, 3});
//   pd::Manifest manifest;
//   manifest.set("uri", reference.manifest_string("uri"));
//   manifest.set("audio_sha256", reference.manifest_string("audio_sha256"));  // or pd::sha256_file(wav)
//   out.commit(manifest);
//
// Then: python verify.py compare dumps/reference/sample dumps/myport/sample --stages 04
//
// Errors are thrown as std::runtime_error with a one-line message.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace pyannote_dump {

namespace fs = std::filesystem;

// The stage folders, in pipeline order (port/dumps.py's STAGES).
inline const std::vector<std::string>& stages() {
    static const std::vector<std::string> names = {
        "01-audio", "02-chunks", "03-segmentation", "04-multilabel", "05-count", "06-fbank", "07-masks",
        "08-embeddings", "09-filter", "10-linkage", "11-fcluster", "12-assign", "13-reconstruct", "14-annotation"};
    return names;
}

enum class Format { npy, txt };

// ----------------------------------------------------------------------------- dtypes
// numpy's name and npy descriptor for each element type a dump uses.
template <class T> struct dtype_of;
template <> struct dtype_of<float>   { static constexpr const char* name = "float32"; static constexpr const char* descr = "<f4"; };
template <> struct dtype_of<double>  { static constexpr const char* name = "float64"; static constexpr const char* descr = "<f8"; };
template <> struct dtype_of<int8_t>  { static constexpr const char* name = "int8";    static constexpr const char* descr = "|i1"; };
template <> struct dtype_of<uint8_t> { static constexpr const char* name = "uint8";   static constexpr const char* descr = "|u1"; };
template <> struct dtype_of<int32_t> { static constexpr const char* name = "int32";   static constexpr const char* descr = "<i4"; };
template <> struct dtype_of<int64_t> { static constexpr const char* name = "int64";   static constexpr const char* descr = "<i8"; };

namespace detail {

inline bool little_endian() {
    const uint16_t one = 1;
    unsigned char first;
    std::memcpy(&first, &one, 1);
    return first == 1;
}

// Host-order bytes of n elements of `itemsize` to little-endian (or back: same swap).
inline void to_little_endian(unsigned char* bytes, size_t n, size_t itemsize) {
    if (little_endian() || itemsize == 1) return;
    for (size_t i = 0; i < n; ++i) std::reverse(bytes + i * itemsize, bytes + (i + 1) * itemsize);
}

inline size_t count(const std::vector<size_t>& shape) {
    size_t n = 1;
    for (size_t d : shape) n *= d;
    return n;
}

// One value as port/dumps.py's write_text_array prints it: '%.9g' (float32), '%.17g'
// (float64), '%d' (integers); NaN is "nan" whatever its sign bit, as in Python.
template <class T> std::string format_value(T value) {
    char buffer[64];
    if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(value)) return "nan";
        std::snprintf(buffer, sizeof buffer, sizeof(T) == 4 ? "%.9g" : "%.17g", static_cast<double>(value));
    } else {
        std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(value));
    }
    return buffer;
}

inline std::string shape_text(const std::vector<size_t>& shape) {
    std::string text;
    for (size_t i = 0; i < shape.size(); ++i) text += (i ? " " : "") + std::to_string(shape[i]);
    return text;
}

// numpy's header: dict with sorted keys, 21 - len(str(shape[0])) spare spaces, then
// space padding and '\n' so that magic + length + header is a multiple of 64 bytes.
inline std::string npy_header(const std::string& descr, const std::vector<size_t>& shape) {
    std::string dims;
    if (shape.size() == 1) dims = std::to_string(shape[0]) + ",";
    else
        for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    if (!shape.empty()) header += std::string(21 - std::to_string(shape[0]).size(), ' ');
    size_t hlen = header.size() + 1;
    size_t pad = 64 - ((8 + 2 + hlen) % 64);
    header += std::string(pad, ' ') + "\n";
    std::string prefix = "\x93NUMPY";
    prefix += '\x01';
    prefix += '\x00';
    uint16_t length = static_cast<uint16_t>(header.size());
    prefix += static_cast<char>(length & 0xff);
    prefix += static_cast<char>(length >> 8);
    return prefix + header;
}

inline std::string json_string(const std::string& value) {
    std::string out = "\"";
    for (unsigned char c : value) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20) {
            char buffer[8];
            std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
            out += buffer;
        } else out += static_cast<char>(c);
    }
    return out + "\"";
}

inline std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path.string() + ": cannot read");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

inline void write_file(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

}  // namespace detail

// ----------------------------------------------------------------------------- manifest
// manifest.json's values (written with sorted keys and 2-space indent, as Python's
// json.dumps(indent=2, sort_keys=True)). The reader needs "audio_sha256" (compare refuses
// dumps of other audio) and uses "uri" for RTTM lines; the writer adds format, side, recording.
class Manifest {
public:
    void set(const std::string& key, const std::string& value) { values_[key] = detail::json_string(value); }
    void set(const std::string& key, const char* value) { set(key, std::string(value)); }
    void set(const std::string& key, long long value) { values_[key] = std::to_string(value); }
    void set(const std::string& key, int value) { set(key, static_cast<long long>(value)); }
    void set(const std::string& key, double value) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.17g", value);
        values_[key] = buffer;
    }
    void set_null(const std::string& key) { values_[key] = "null"; }
    void set_json(const std::string& key, const std::string& raw_json) { values_[key] = raw_json; }
    const std::map<std::string, std::string>& values() const { return values_; }

    std::string text() const {
        std::string out = "{";
        bool first = true;
        for (const auto& [key, value] : values_) {
            out += (first ? "\n  " : ",\n  ") + detail::json_string(key) + ": " + value;
            first = false;
        }
        return out + (first ? "}\n" : "\n}\n");
    }

private:
    std::map<std::string, std::string> values_;
};

// ----------------------------------------------------------------------------- sha256
// SHA-256 of a file's bytes as lowercase hex: the manifest's audio_sha256.
inline std::string sha256_file(const fs::path& path) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::string data = detail::read_file(path);
    uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
    data += static_cast<char>(0x80);
    while (data.size() % 64 != 56) data += '\0';
    for (int i = 7; i >= 0; --i) data += static_cast<char>((bits >> (8 * i)) & 0xff);
    auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
    for (size_t block = 0; block < data.size(); block += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i) {
            const auto* p = reinterpret_cast<const unsigned char*>(data.data() + block + 4 * i);
            w[i] = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
        }
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    char hex[65];
    for (int i = 0; i < 8; ++i) std::snprintf(hex + 8 * i, 9, "%08x", h[i]);
    return std::string(hex, 64);
}

// ----------------------------------------------------------------------------- writer
// One recording's dump, collected in the hidden folder <root>/<side>/.<recording>.partial-<tag>
// and renamed to <root>/<side>/<recording> by commit(): a crash or an exception leaves the
// previous dump untouched and no partial one (readers skip hidden folders).
class Writer {
public:
    Writer(const fs::path& root, const std::string& side, const std::string& recording, Format format = Format::npy)
        : root_(root), side_(side), recording_(recording), format_(format) {
        std::random_device device;
        std::mt19937_64 random(device() ^ static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
        tag_ = std::to_string(random() % 1000000000ULL);
        final_ = root_ / side_ / recording_;
        tmp_ = root_ / side_ / ("." + recording_ + ".partial-" + tag_);
        fs::remove_all(tmp_);
        fs::create_directories(tmp_);
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    ~Writer() { abort(); }

    // data: n = prod(shape) values in C order (row-major); shape {} is a 0-d scalar.
    template <class T>
    void write(const std::string& stage, const std::string& name, const T* data, const std::vector<size_t>& shape) {
        fs::path folder = stage_folder(stage);
        size_t n = detail::count(shape);
        if (format_ == Format::npy) {
            std::string bytes = detail::npy_header(dtype_of<T>::descr, shape);
            size_t offset = bytes.size();
            bytes.resize(offset + n * sizeof(T));
            std::memcpy(&bytes[offset], data, n * sizeof(T));
            detail::to_little_endian(reinterpret_cast<unsigned char*>(&bytes[offset]), n, sizeof(T));
            detail::write_file(folder / (name + ".npy"), bytes);
        } else {
            std::string text = std::string("# dtype: ") + dtype_of<T>::name + "; shape: " + detail::shape_text(shape) + "\n";
            size_t row = shape.empty() ? 1 : shape.back();
            for (size_t i = 0; i < n; ++i) text += detail::format_value(data[i]) + ((i + 1) % row == 0 ? "\n" : " ");
            detail::write_file(folder / (name + ".txt"), text);
        }
    }
    template <class T>
    void write(const std::string& stage, const std::string& name, const std::vector<T>& data, const std::vector<size_t>& shape) {
        if (data.size() != detail::count(shape))
            throw std::runtime_error(stage + "/" + name + ": " + std::to_string(data.size()) + " values for shape (" +
                                     detail::shape_text(shape) + ")");
        write(stage, name, data.data(), shape);
    }
    template <class T> void write_scalar(const std::string& stage, const std::string& name, T value) {
        write(stage, name, &value, {});
    }
    // Text compared verbatim, e.g. write_text("14-annotation", "out_diarization.rttm", rttm).
    void write_text(const std::string& stage, const std::string& name, const std::string& text) {
        detail::write_file(stage_folder(stage) / name, text);
    }

    // Write manifest.json last, then swap the complete dump into place.
    fs::path commit(Manifest manifest) {
        manifest.set("format", 1);
        manifest.set("side", side_);
        manifest.set("recording", recording_);
        detail::write_file(tmp_ / "manifest.json", manifest.text());
        fs::path old = root_ / side_ / ("." + recording_ + ".old-" + tag_);
        if (fs::exists(final_)) fs::rename(final_, old);
        fs::rename(tmp_, final_);
        fs::remove_all(old);
        committed_ = true;
        return final_;
    }

    // Drop everything written so far (the destructor does this unless commit() ran).
    void abort() {
        if (committed_) return;
        std::error_code ignored;
        fs::remove_all(tmp_, ignored);
    }

private:
    fs::path stage_folder(const std::string& stage) {
        if (std::find(stages().begin(), stages().end(), stage) == stages().end())
            throw std::runtime_error("unknown stage " + stage);
        fs::path folder = tmp_ / stage;
        fs::create_directories(folder);
        return folder;
    }

    fs::path root_;
    std::string side_, recording_, tag_;
    Format format_;
    fs::path final_, tmp_;
    bool committed_ = false;
};

// ----------------------------------------------------------------------------- reader
// An array read from a dump: numpy dtype name, shape, little-endian element bytes.
struct Array {
    std::string dtype;  // "float32", "float64", "int8", "uint8", "int32", "int64", "bool"
    std::vector<size_t> shape;
    std::vector<unsigned char> bytes;

    size_t size() const { return detail::count(shape); }

    // The values converted to T (static_cast per element), in C order.
    template <class T> std::vector<T> as() const {
        std::vector<T> out(size());
        auto convert = [&](auto tag) {
            using S = decltype(tag);
            for (size_t i = 0; i < out.size(); ++i) {
                unsigned char b[sizeof(S)];
                std::memcpy(b, bytes.data() + i * sizeof(S), sizeof(S));
                detail::to_little_endian(b, 1, sizeof(S));
                S value;
                std::memcpy(&value, b, sizeof(S));
                out[i] = static_cast<T>(value);
            }
        };
        if (dtype == "float32") convert(float{});
        else if (dtype == "float64") convert(double{});
        else if (dtype == "int8") convert(int8_t{});
        else if (dtype == "uint8" || dtype == "bool") convert(uint8_t{});
        else if (dtype == "int32") convert(int32_t{});
        else if (dtype == "int64") convert(int64_t{});
        else throw std::runtime_error("unsupported dtype " + dtype);
        return out;
    }
    template <class T> T scalar() const {
        if (size() != 1) throw std::runtime_error("not a scalar: " + std::to_string(size()) + " values");
        return as<T>()[0];
    }
};

namespace detail {

inline size_t itemsize(const std::string& dtype) {
    if (dtype == "float64" || dtype == "int64") return 8;
    if (dtype == "float32" || dtype == "int32") return 4;
    if (dtype == "int8" || dtype == "uint8" || dtype == "bool") return 1;
    throw std::runtime_error("unsupported dtype " + dtype);
}

inline std::string dtype_from_descr(const std::string& descr, const std::string& where) {
    static const std::map<std::string, std::string> names = {
        {"<f4", "float32"}, {"<f8", "float64"}, {"|i1", "int8"}, {"|u1", "uint8"},
        {"<i4", "int32"},   {"<i8", "int64"},   {"|b1", "bool"}};
    auto found = names.find(descr);
    if (found == names.end()) throw std::runtime_error(where + ": unsupported npy dtype " + descr);
    return found->second;
}

}  // namespace detail

// npy format 1.0/2.0/3.0, little-endian or byte-sized dtypes, C order.
inline Array read_npy(const fs::path& path) {
    std::string bytes = detail::read_file(path);
    const std::string where = path.string();
    if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(where + ": not an npy file");
    unsigned major = static_cast<unsigned char>(bytes[6]);
    size_t length, start;
    auto byte = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(bytes[i])); };
    if (major == 1) length = byte(8) | (byte(9) << 8), start = 10;
    else length = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24), start = 12;
    if (bytes.size() < start + length) throw std::runtime_error(where + ": truncated npy header");
    std::string header = bytes.substr(start, length);
    auto field = [&](const std::string& key) {
        size_t at = header.find("'" + key + "':");
        if (at == std::string::npos) throw std::runtime_error(where + ": npy header lacks " + key);
        return header.substr(at + key.size() + 3);
    };
    std::string descr = field("descr");
    descr = descr.substr(descr.find('\'') + 1);
    descr = descr.substr(0, descr.find('\''));
    if (header.find("'fortran_order': True") != std::string::npos)
        throw std::runtime_error(where + ": Fortran-ordered npy not supported");
    Array array;
    array.dtype = detail::dtype_from_descr(descr, where);
    std::string dims = field("shape");
    dims = dims.substr(dims.find('(') + 1, dims.find(')') - dims.find('(') - 1);
    std::replace(dims.begin(), dims.end(), ',', ' ');
    std::istringstream in(dims);
    for (size_t d; in >> d;) array.shape.push_back(d);
    size_t n = array.size() * detail::itemsize(array.dtype);
    if (bytes.size() - start - length < n) throw std::runtime_error(where + ": truncated npy data");
    array.bytes.assign(bytes.begin() + static_cast<long>(start + length), bytes.begin() + static_cast<long>(start + length + n));
    return array;
}

// The text format: "# dtype: float32; shape: 21 589 7", then the values.
inline Array read_txt(const fs::path& path) {
    std::string text = detail::read_file(path);
    const std::string where = path.string();
    size_t eol = text.find('\n');
    std::string header = text.substr(0, eol);
    size_t d = header.find("dtype:"), s = header.find("shape:");
    if (header.rfind("#", 0) != 0 || d == std::string::npos || s == std::string::npos)
        throw std::runtime_error(where + ": bad header '" + header + "' (want '# dtype: float32; shape: 21 589 7')");
    Array array;
    std::istringstream dtype_in(header.substr(d + 6, header.find(';', d) - d - 6));
    dtype_in >> array.dtype;
    std::istringstream shape_in(header.substr(s + 6));
    for (size_t n; shape_in >> n;) array.shape.push_back(n);
    size_t size = detail::itemsize(array.dtype);
    std::istringstream values(eol == std::string::npos ? std::string() : text.substr(eol + 1));
    std::string token;
    size_t count = 0;
    while (values >> token) {
        unsigned char b[8];
        bool is_float = array.dtype.rfind("float", 0) == 0;
        if (is_float) {
            double v = std::strtod(token.c_str(), nullptr);
            if (size == 4) { float f = static_cast<float>(v); std::memcpy(b, &f, 4); }
            else std::memcpy(b, &v, 8);
        } else {
            long long v = std::strtoll(token.c_str(), nullptr, 10);
            if (size == 1) { int8_t x = static_cast<int8_t>(v); std::memcpy(b, &x, 1); }
            else if (size == 4) { int32_t x = static_cast<int32_t>(v); std::memcpy(b, &x, 4); }
            else { int64_t x = v; std::memcpy(b, &x, 8); }
        }
        detail::to_little_endian(b, 1, size);
        array.bytes.insert(array.bytes.end(), b, b + size);
        ++count;
    }
    if (count != array.size())
        throw std::runtime_error(where + ": header says " + std::to_string(array.size()) + " values, file has " +
                                 std::to_string(count));
    return array;
}

// One recording's dump (the reference's, or any side's): load(stage, name).
class Reader {
public:
    explicit Reader(const fs::path& path) : path_(path) {
        if (!fs::is_regular_file(path_ / "manifest.json"))
            throw std::runtime_error(path_.string() + ": no manifest.json (not a dump, or an interrupted one)");
        manifest_ = detail::read_file(path_ / "manifest.json");
    }
    const fs::path& path() const { return path_; }
    const std::string& manifest() const { return manifest_; }

    // A top-level string value of manifest.json ("uri", "audio_sha256", ...); "" when absent.
    std::string manifest_string(const std::string& key) const {
        size_t at = manifest_.find("\"" + key + "\":");
        if (at == std::string::npos) return "";
        size_t open = manifest_.find('"', at + key.size() + 3);
        if (open == std::string::npos) return "";
        std::string value;
        for (size_t i = open + 1; i < manifest_.size() && manifest_[i] != '"'; ++i) {
            if (manifest_[i] == '\\' && i + 1 < manifest_.size()) ++i;
            value += manifest_[i];
        }
        return value;
    }

    bool has(const std::string& stage, const std::string& name) const {
        for (const char* suffix : {"", ".npy", ".txt"})
            if (fs::is_regular_file(path_ / stage / (name + suffix))) return true;
        return false;
    }

    // Names dumped for a stage (without .npy/.txt; .rttm files keep their suffix), sorted.
    std::vector<std::string> names(const std::string& stage) const {
        std::vector<std::string> out;
        if (!fs::is_directory(path_ / stage)) return out;
        for (const auto& entry : fs::directory_iterator(path_ / stage)) {
            fs::path file = entry.path().filename();
            if (file.extension() == ".npy" || file.extension() == ".txt") out.push_back(file.stem().string());
            else if (file.extension() == ".rttm") out.push_back(file.string());
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return out;
    }

    Array load(const std::string& stage, const std::string& name) const {
        fs::path folder = path_ / stage;
        if (fs::is_regular_file(folder / (name + ".npy"))) return read_npy(folder / (name + ".npy"));
        if (fs::is_regular_file(folder / (name + ".txt"))) return read_txt(folder / (name + ".txt"));
        throw std::runtime_error(path_.string() + ": " + stage + "/" + name + " missing");
    }

    std::string load_text(const std::string& stage, const std::string& name) const {
        return detail::read_file(path_ / stage / name);
    }

private:
    fs::path path_;
    std::string manifest_;
};

}  // namespace pyannote_dump
