import ConveyorCore

/// Just enough XML for S3's small documents (error bodies, upload ids, part lists): S3 writes them flat, without
/// CDATA, attributes on the elements read or nesting of the same name.
enum S3XML {
    /// The text of the first `<name>…</name>`, unescaped.
    static func first(_ name: String, in text: String) -> String? {
        all(name, in: text).first
    }

    /// The texts of every `<name>…</name>`, in document order.
    static func all(_ name: String, in text: String) -> [String] {
        blocks(name, in: text).map(unescape)
    }

    /// Each `<name>…</name>` block's inner XML, for repeated records (`<Upload>` in a listing).
    static func blocks(_ name: String, in text: String) -> [Substring] {
        var found: [Substring] = []
        var rest = Substring(text)
        let open = "<\(name)>", close = "</\(name)>"
        while let start = rest.range(of: open), let end = rest[start.upperBound...].range(of: close) {
            found.append(rest[start.upperBound..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return found
    }

    static func escape(_ text: String) -> String { text.xmlEscaped }

    static func unescape(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = text
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";"), rest.distance(from: amp, to: semicolon) <= 10 else {
                out += "&"
                rest = rest[rest.index(after: amp)...]
                continue
            }
            let entity = rest[rest.index(after: amp)..<semicolon]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let number = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16)
                    : entity.hasPrefix("#") ? UInt32(entity.dropFirst(), radix: 10) : nil
                if let number, let scalar = Unicode.Scalar(number) { out.unicodeScalars.append(scalar) } else { out += "&\(entity);" }
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return out + rest
    }
}
