public import AV
public import ConveyorCore

extension MediaProbe {
    /// The probe as ffprobe's `-show_format -show_streams` JSON: same field names, numbers that ffprobe
    /// prints as strings stay strings. Container tags are left out on purpose (they carry GPS positions).
    public var ffprobeJSON: JSONValue {
        var format = JSONObject()
        format["nb_streams"] = JSONValue(streams.count)
        format["format_name"] = JSONValue(formatName)
        if let formatLongName { format["format_long_name"] = JSONValue(formatLongName) }
        if let startTime { format["start_time"] = JSONValue(Self.seconds(startTime)) }
        if let duration { format["duration"] = JSONValue(Self.seconds(duration)) }
        if let size { format["size"] = JSONValue(String(size)) }
        if let bitRate { format["bit_rate"] = JSONValue(String(bitRate)) }
        format["probe_score"] = JSONValue(probeScore)
        return .object(JSONObject([("streams", .array(streams.map(\.ffprobeJSON))), ("format", .object(format))]))
    }

    /// `12.345678`, as ffprobe prints it. A file may declare any start time or duration: beyond ±9e12 s (where
    /// microseconds leave Int) the plain Double is printed rather than trapping.
    static func seconds(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 9e12, let micros = Int(exactly: (value * 1_000_000).rounded()) else { return String(value) }
        let whole = micros / 1_000_000, fraction = abs(micros % 1_000_000)
        let digits = String(fraction)
        return "\(micros < 0 && whole == 0 ? "-" : "")\(whole)." + String(repeating: "0", count: 6 - digits.count) + digits
    }
}

extension MediaProbe.Stream {
    var ffprobeJSON: JSONValue {
        var o = JSONObject()
        o["index"] = JSONValue(index)
        o["codec_name"] = JSONValue(codecName)
        if let codecLongName { o["codec_long_name"] = JSONValue(codecLongName) }
        if let profile { o["profile"] = JSONValue(profile) }
        o["codec_type"] = JSONValue(codecType)
        if let width { o["width"] = JSONValue(width) }
        if let height { o["height"] = JSONValue(height) }
        if let pixFmt { o["pix_fmt"] = JSONValue(pixFmt) }
        if let sampleFmt { o["sample_fmt"] = JSONValue(sampleFmt) }
        if let sampleRate { o["sample_rate"] = JSONValue(String(sampleRate)) }
        if let channels { o["channels"] = JSONValue(channels) }
        if let channelLayout { o["channel_layout"] = JSONValue(channelLayout) }
        if let rFrameRate { o["r_frame_rate"] = JSONValue(rFrameRate) }
        if let avgFrameRate { o["avg_frame_rate"] = JSONValue(avgFrameRate) }
        o["time_base"] = JSONValue(timeBase)
        if let duration { o["duration"] = JSONValue(MediaProbe.seconds(duration)) }
        if let bitRate { o["bit_rate"] = JSONValue(String(bitRate)) }
        if let nbFrames { o["nb_frames"] = JSONValue(String(nbFrames)) }
        if attachedPicture { o["disposition"] = ["attached_pic": 1] }
        if let rotation {
            o["side_data_list"] = [["side_data_type": "Display Matrix", "rotation": JSONValue(rotation)]]
        }
        return .object(o)
    }
}
