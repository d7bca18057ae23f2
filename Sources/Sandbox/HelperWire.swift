import ConveyorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Framing between a worker and its helpers: a 4-byte big-endian length, then that many bytes of JSON.
///
/// Request: `{"operation": "image.thumbnail", "arguments": {...}, "deadline_ms": 29000}`.
/// Response: `{"result": ...}` or `{"error": {"errorClass": "...", "message": "...", "permanent": false}}`.
enum HelperWire {
    /// Larger frames are refused: results are small descriptions, never pixels.
    static let maximumFrame = 64 << 20

    enum ReadResult {
        case frame([UInt8])
        case endOfFile
        case timedOut
    }

    struct WireError: Error, CustomStringConvertible {
        var description: String
    }

    /// Writes one frame; throws on a broken pipe (the child died).
    static func writeFrame(_ payload: [UInt8], to fd: Int32) throws {
        guard payload.count <= maximumFrame, let n = UInt32(exactly: payload.count) else {
            throw WireError(description: "frame of \(payload.count) bytes exceeds the \(maximumFrame) byte limit")
        }
        var frame = [UInt8]()
        frame.reserveCapacity(payload.count + 4)
        frame.append(UInt8(truncatingIfNeeded: n >> 24))
        frame.append(UInt8(truncatingIfNeeded: n >> 16))
        frame.append(UInt8(truncatingIfNeeded: n >> 8))
        frame.append(UInt8(truncatingIfNeeded: n))
        frame.append(contentsOf: payload)
        var written = 0
        while written < frame.count {
            let r = frame.withUnsafeBytes { raw in write(fd, raw.baseAddress! + written, raw.count - written) }
            if r < 0 {
                if errno == EINTR { continue }
                throw WireError(description: "write to helper pipe failed: \(String(cString: strerror(errno)))")
            }
            written += r
        }
    }

    /// Reads one frame; with a deadline, gives up when it passes (poll, so a hung peer cannot block forever).
    static func readFrame(from fd: Int32, until deadline: ContinuousClock.Instant?) throws -> ReadResult {
        var header = [UInt8](repeating: 0, count: 4)
        switch try readExactly(&header, from: fd, until: deadline) {
        case .endOfFile: return .endOfFile
        case .timedOut: return .timedOut
        case .frame: break
        }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length <= maximumFrame else { throw WireError(description: "helper frame of \(length) bytes exceeds the \(maximumFrame) byte limit") }
        var body = [UInt8](repeating: 0, count: length)
        switch try readExactly(&body, from: fd, until: deadline) {
        case .endOfFile: return .endOfFile
        case .timedOut: return .timedOut
        case .frame: return .frame(body)
        }
    }

    private static func readExactly(_ buffer: inout [UInt8], from fd: Int32, until deadline: ContinuousClock.Instant?) throws -> ReadResult {
        var got = 0
        while got < buffer.count {
            if let deadline {
                let left = deadline - .now
                if left <= .zero { return .timedOut }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&pfd, 1, Int32(clamping: max(1, HelperPool.milliseconds(left))))
                if r < 0 {
                    if errno == EINTR { continue }
                    throw WireError(description: "poll on helper pipe failed: \(String(cString: strerror(errno)))")
                }
                if r == 0 { continue }
            }
            let r = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + got, raw.count - got) }
            if r < 0 {
                if errno == EINTR { continue }
                throw WireError(description: "read from helper pipe failed: \(String(cString: strerror(errno)))")
            }
            if r == 0 { return .endOfFile }
            got += r
        }
        return .frame([])
    }

    static func errorFrame(_ failure: JobFailure) -> JSONValue {
        .object(JSONObject([
            ("error", .object(JSONObject([
                ("errorClass", .string(failure.errorClass)),
                ("message", .string(failure.message)),
                ("permanent", .bool(failure.isPermanent)),
            ])))
        ]))
    }
}
