// Benchmark driver for Benchmarks/audio/run.sh: times Conveyor's in-process waveform (decode, min/max, .dat + JSON).
import AV
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: AudioBench IN OUT_STEM [bits] [pixels_per_second]\n".utf8))
    exit(64)
}
let bits = arguments.count > 2 ? Int(arguments[2]) ?? 8 : 8
let pps = arguments.count > 3 ? Int(arguments[3]) ?? 100 : 100
var policy = InputPolicy.audio
policy.maxDurationSeconds = 0
do {
    let start = ContinuousClock.now
    let result = try WaveformGenerator.generate(
        path: arguments[0], policy: policy, options: WaveformOptions(scale: .pixelsPerSecond(pps), bits: bits),
        deadline: .now + .seconds(3600))
    try Data(result.waveform.dat).write(to: URL(fileURLWithPath: arguments[1] + ".dat"))
    try Data(result.waveform.json).write(to: URL(fileURLWithPath: arguments[1] + ".json"))
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("{\"duration\":\(result.duration),\"length\":\(result.waveform.length),\"seconds\":\(seconds)}")
} catch {
    FileHandle.standardError.write(Data("AudioBench: \(error)\n".utf8))
    exit(1)
}
