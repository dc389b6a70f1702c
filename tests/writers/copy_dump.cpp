// Test driver for writers/pyannote_dump.hpp: read every array of one recording's dump
// (npy or txt) and write it again with the C++ writer, as a port would write its outputs.
//   copy_dump SOURCE_RECORDING OUT_ROOT SIDE npy|txt [abort]
// "abort" throws before commit(): nothing may appear under OUT_ROOT/SIDE.
//   copy_dump sha256 FILE      prints sha256_file(FILE)
#include "pyannote_dump.hpp"

#include <iostream>

namespace pd = pyannote_dump;

template <class T> void copy_as(pd::Writer& out, const std::string& stage, const std::string& name, const pd::Array& a) {
    out.write(stage, name, a.as<T>(), a.shape);
}

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "sha256") {
        std::cout << pd::sha256_file(argv[2]) << "\n";
        return 0;
    }
    if (argc < 5) {
        std::cerr << "usage: copy_dump SOURCE OUT_ROOT SIDE npy|txt [abort]\n";
        return 2;
    }
    try {
        pd::Reader source(argv[1]);
        std::string recording = pd::fs::path(argv[1]).filename().string();
        pd::Writer out(argv[2], argv[3], recording, std::string(argv[4]) == "txt" ? pd::Format::txt : pd::Format::npy);
        for (const auto& stage : pd::stages()) {
            for (const auto& name : source.names(stage)) {
                if (name.size() > 5 && name.substr(name.size() - 5) == ".rttm") {
                    out.write_text(stage, name, source.load_text(stage, name));
                    continue;
                }
                pd::Array a = source.load(stage, name);
                if (a.dtype == "float32") copy_as<float>(out, stage, name, a);
                else if (a.dtype == "float64") copy_as<double>(out, stage, name, a);
                else if (a.dtype == "int8") copy_as<int8_t>(out, stage, name, a);
                else if (a.dtype == "uint8") copy_as<uint8_t>(out, stage, name, a);
                else if (a.dtype == "int32") copy_as<int32_t>(out, stage, name, a);
                else if (a.dtype == "int64") copy_as<int64_t>(out, stage, name, a);
                else throw std::runtime_error(stage + "/" + name + ": dtype " + a.dtype);
            }
        }
        if (argc > 5 && std::string(argv[5]) == "abort") throw std::runtime_error("aborted on purpose");
        pd::Manifest manifest;
        manifest.set("uri", source.manifest_string("uri"));
        manifest.set("audio_sha256", source.manifest_string("audio_sha256"));
        manifest.set("models", "fixture");
        out.commit(manifest);
    } catch (const std::exception& error) {
        std::cerr << "error: " << error.what() << "\n";
        return 1;
    }
    return 0;
}
