// Benchmark driver for Benchmarks/video/run.sh: times Conveyor's in-process probe and transcode.
import AV
import Foundation

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    FileHandle.standardError.write(Data("usage: VideoBench probe FILE... | transcode IN OUT [1080p|720p] [preset]\n".utf8))
    exit(64)
}
do {
    switch command {
    case "probe":
        let files = Array(arguments.dropFirst())
        var streams = 0
        let elapsed = try seconds {
            for file in files {
                streams += try MediaProbe.probe(path: file, deadline: .now + .seconds(30)).streams.count
            }
        }
        print("{\"clips\":\(files.count),\"streams\":\(streams),\"seconds\":\(elapsed)}")
    case "transcode":
        var profile = arguments.count > 3 && arguments[3] == "720p" ? TranscodeProfile.web720p : .web1080p
        if arguments.count > 4 { profile.preset = arguments[4] }
        var result: TranscodeResult?
        let elapsed = try seconds {
            result = try Transcoder.transcode(
                inputPath: arguments[1], outputPath: arguments[2], profile: profile, posterAt: nil,
                deadline: .now + .seconds(3600))
        }
        print("{\"frames\":\(result!.frames),\"seconds\":\(elapsed)}")
    default:
        FileHandle.standardError.write(Data("unknown command \(command)\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("VideoBench: \(error)\n".utf8))
    exit(1)
}
