// A worked example of porting pyannote one function at a time: stages 04 and 05 in C++.
//
//   04-multilabel  pyannote.audio.utils.powerset.Powerset.to_multilabel (hard)
//   05-count       SpeakerDiarization.speaker_count -> Inference.trim + Inference.aggregate + rint
//
// Each stage reads the reference's (pyannote's) own dumped inputs, so it is checked in
// isolation: its drift cannot come from an earlier stage. The outputs are written with
// writers/pyannote_dump.hpp into a dump the harness compares:
//
//   g++ -std=c++17 -O2 -I writers examples/cpp/stages_04_05.cpp -o stages_04_05
//   ./stages_04_05 dumps/reference/sample dumps/cpp          # writes dumps/cpp/sample
//   python verify.py compare dumps/reference/sample dumps/cpp/sample --stages 04-05
//
// Both stages are discrete (one-hot speakers, integer counts): they must be identical to
// pyannote's, so this mirrors pyannote's arithmetic step by step, float32 where it is float32.
#include "pyannote_dump.hpp"

#include <cmath>
#include <iostream>
#include <vector>

namespace pd = pyannote_dump;

// ----------------------------------------------------------------------------- the model's facts
// pyannote/segmentation-3.0 (and the fixture with its architecture): 16 kHz, 10 s chunks,
// powerset of 3 speakers with at most 2 at once. The pipeline slides chunks with a step of
// segmentation_step * duration (3.1: 0.1 * 10 s), starting at 0.
constexpr int kSampleRate = 16000;
constexpr double kChunkDuration = 10.0;
constexpr double kChunkStep = 0.1 * kChunkDuration;
constexpr int kNumSpeakers = 3;    // Powerset(num_classes=3, ...)
constexpr int kMaxSetSize = 2;     // Powerset(..., max_set_size=2)
constexpr int kSincNetStride = 10; // PyanNet(sincnet={"stride": 10})

// pyannote.core.SlidingWindow: only what these stages use.
struct SlidingWindow {
    double start, duration, step;
    // SlidingWindow.closest_frame: int(np.rint((t - start - 0.5 * duration) / step))
    long closest_frame(double t) const { return static_cast<long>(std::nearbyint((t - start - 0.5 * duration) / step)); }
};

// ----------------------------------------------------------------------------- receptive field
// Model.receptive_field (pyannote.audio.core.model) from SincNet's conv/pool stack
// (models/blocks/sincnet.py: kernel [251, 3, 5, 3, 5, 3], stride [10, 3, 1, 3, 1, 3]), with
// utils/receptive_field.py's formulas. The LSTM and linear layers keep the frame rate.
SlidingWindow receptive_field() {
    const int kernel[] = {251, 3, 5, 3, 5, 3};
    const int stride[] = {kSincNetStride, 3, 1, 3, 1, 3};
    auto size = [&](long num_frames) {  // multi_conv_receptive_field_size
        for (int i = 5; i >= 0; --i) num_frames = kernel[i] + (num_frames - 1) * stride[i];
        return num_frames;
    };
    long center = 0;  // multi_conv_receptive_field_center(frame=0)
    for (int i = 5; i >= 0; --i) center = center * stride[i] + (kernel[i] - 1) / 2;
    const long size1 = size(1), step = size(2) - size1;
    // Python: (center - (size - 1) / 2) / sample_rate, true division in float64
    return {(static_cast<double>(center) - static_cast<double>(size1 - 1) / 2.0) / kSampleRate,
            static_cast<double>(size1) / kSampleRate, static_cast<double>(step) / kSampleRate};
}

// ----------------------------------------------------------------------------- 04-multilabel
// Powerset.build_mapping: class k -> the set of speakers it holds, in itertools.combinations
// order: {}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}.
std::vector<std::vector<float>> powerset_mapping() {
    std::vector<std::vector<float>> mapping;
    for (int set_size = 0; set_size <= kMaxSetSize; ++set_size) {
        // combinations(range(kNumSpeakers), set_size) in lexicographic order
        std::vector<int> pick(set_size);
        for (int i = 0; i < set_size; ++i) pick[i] = i;
        while (true) {
            std::vector<float> row(kNumSpeakers, 0.0f);
            for (int s : pick) row[s] = 1.0f;
            mapping.push_back(row);
            int i = set_size - 1;
            while (i >= 0 && pick[i] == kNumSpeakers - set_size + i) --i;
            if (i < 0) break;
            ++pick[i];
            for (int j = i + 1; j < set_size; ++j) pick[j] = pick[j - 1] + 1;
        }
    }
    return mapping;
}

// Powerset.to_multilabel(soft=False): one_hot(argmax(log_probs)) @ mapping.
// torch.argmax returns the first maximum, as the strict '>' below does.
// log_probs: (C, F, K) -> multilabel (C, F, S) float32
std::vector<float> to_multilabel(const std::vector<float>& log_probs, size_t chunks, size_t frames, size_t classes) {
    const auto mapping = powerset_mapping();
    if (mapping.size() != classes) throw std::runtime_error("log_probs has " + std::to_string(classes) +
                                                            " classes, the powerset " + std::to_string(mapping.size()));
    std::vector<float> multilabel(chunks * frames * kNumSpeakers);
    for (size_t i = 0; i < chunks * frames; ++i) {
        const float* p = &log_probs[i * classes];
        size_t best = 0;
        for (size_t k = 1; k < classes; ++k)
            if (p[k] > p[best]) best = k;
        for (int s = 0; s < kNumSpeakers; ++s) multilabel[i * kNumSpeakers + s] = mapping[best][s];
    }
    return multilabel;
}

// ----------------------------------------------------------------------------- 05-count
// SpeakerDiarization.speaker_count(binarized, receptive_field, warm_up=(0.0, 0.0)):
//   trimmed = Inference.trim(binarized, warm_up)     (no-op for warm_up 0: same chunks)
//   count = Inference.aggregate(sum over speakers, frames, hamming=False, missing=0.0)
//   count = rint(count).astype(uint8)
// Returns (N,) counts and the frames' sliding window (stage 05's out_frames).
std::vector<uint8_t> speaker_count(const std::vector<float>& binarized, size_t num_chunks, size_t frames_per_chunk,
                                   const SlidingWindow& receptive, SlidingWindow& count_frames) {
    const SlidingWindow chunks{0.0, kChunkDuration, kChunkStep};
    // Inference.aggregate: frames start where the chunks start
    const SlidingWindow frames{chunks.start, receptive.duration, receptive.step};
    const long num_frames =
        frames.closest_frame(chunks.start + chunks.duration + (num_chunks - 1) * chunks.step + 0.5 * frames.duration) + 1;
    // pyannote accumulates in float32 arrays; the summands are small integers (exact)
    std::vector<float> aggregated(num_frames, 0.0f), overlapping(num_frames, 0.0f), mask(num_frames, 0.0f);
    for (size_t c = 0; c < num_chunks; ++c) {
        const double chunk_start = chunks.start + c * chunks.step;  // SlidingWindow.__getitem__
        const long start_frame = frames.closest_frame(chunk_start + 0.5 * frames.duration);
        for (size_t f = 0; f < frames_per_chunk; ++f) {
            const long n = start_frame + static_cast<long>(f);
            if (n >= num_frames) break;  // numpy slicing stops at the array's end
            // np.sum(trimmed, axis=-1): number of active speakers in this (chunk, frame)
            float score = 0.0f;
            for (int s = 0; s < kNumSpeakers; ++s) score += binarized[(c * frames_per_chunk + f) * kNumSpeakers + s];
            if (std::isnan(score)) continue;  // mask = 1 - isnan(score): contributes nothing
            // hamming=False and warm_up (0, 0): both windows are ones
            aggregated[n] += score;
            overlapping[n] += 1.0f;
            mask[n] = 1.0f;
        }
    }
    std::vector<uint8_t> count(num_frames);
    for (long n = 0; n < num_frames; ++n) {
        // average = aggregated / max(overlapping, epsilon) in float32; missing=0.0 where no chunk
        float average = mask[n] == 0.0f ? 0.0f : aggregated[n] / std::max(overlapping[n], 1e-12f);
        count[n] = static_cast<uint8_t>(std::nearbyint(average));  // np.rint: halves to even
    }
    count_frames = frames;
    return count;
}

// ----------------------------------------------------------------------------- main
int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: stages_04_05 REFERENCE_RECORDING_DUMP OUT_ROOT\n"
                     "  e.g. stages_04_05 dumps/reference/sample dumps/cpp  (writes dumps/cpp/sample)\n";
        return 2;
    }
    try {
        pd::Reader reference(argv[1]);
        const std::string recording = pd::fs::path(argv[1]).filename().string();
        pd::fs::path side = argv[2];  // the dump lands in OUT_ROOT/<recording>
        if (side.filename().empty()) side = side.parent_path();  // "dumps/cpp/"
        pd::Writer out(side.parent_path(), side.filename().string(), recording);

        // 04: pyannote's log-probabilities in, hard multilabel out
        pd::Array log_probs = reference.load("03-segmentation", "out_log_probs");
        const size_t C = log_probs.shape.at(0), F = log_probs.shape.at(1), K = log_probs.shape.at(2);
        out.write("04-multilabel", "out_multilabel", to_multilabel(log_probs.as<float>(), C, F, K), {C, F, kNumSpeakers});

        // 05: pyannote's own multilabel in (the isolated check), count and its frames out
        pd::Array binarized = reference.load("04-multilabel", "out_multilabel");
        SlidingWindow frames{};
        std::vector<uint8_t> count = speaker_count(binarized.as<float>(), binarized.shape.at(0), binarized.shape.at(1),
                                                   receptive_field(), frames);
        out.write("05-count", "out_count", count, {count.size(), 1});
        out.write("05-count", "out_frames", std::vector<double>{frames.start, frames.duration, frames.step}, {3});

        // the manifest names the audio the reference was run on: compare refuses other audio
        pd::Manifest manifest;
        manifest.set("uri", reference.manifest_string("uri"));
        manifest.set("audio_sha256", reference.manifest_string("audio_sha256"));
        // and the pipeline (community-1 or 3.1): compare refuses a dump of the other one
        const std::string pipeline = reference.manifest_string("pipeline");
        if (!pipeline.empty()) manifest.set("pipeline", pipeline);
        manifest.set("implementation", "examples/cpp/stages_04_05.cpp");
        std::cout << "wrote " << out.commit(manifest).string() << " (04-multilabel, 05-count)\n";
    } catch (const std::exception& error) {
        std::cerr << "error: " << error.what() << "\n";
        return 2;
    }
    return 0;
}
