public import ConveyorCore

/// The links of a rendered HTML part: only `http`, `https` and `mailto` URLs (and relative ones) may be sent. A job's
/// data that puts `javascript:`, `data:`, `vbscript:` or any other scheme into a link is refused.
enum MailLinks {
    static let allowedSchemes: Set<String> = ["http", "https", "mailto"]
    /// Attributes whose value a mail client or browser treats as a URL.
    static let urlAttributes: Set<String> = [
        "href", "src", "action", "formaction", "background", "poster", "cite", "longdesc", "usemap", "xlink:href", "srcset", "data",
    ]

    /// Throws `InvalidArguments` naming the `data` value (`data.login_url`) that put a refused scheme into a link of
    /// `html`, or the template when the link is the template's own.
    static func check(html: String, data: JSONObject, template: String) throws(JobFailure) {
        for (attribute, raw) in attributes(html) where urlAttributes.contains(attribute) {
            let value = decodeEntities(raw)
            let urls = attribute == "srcset" ? value.split(separator: ",").map { String($0.split(separator: " ").first ?? "") } : [value]
            for url in urls {
                guard let scheme = scheme(of: url), !allowedSchemes.contains(scheme) else { continue }
                if let path = culprit(in: .object(data), path: "data", within: url) {
                    throw .invalidArguments("\(path) is a \(scheme): URL; links may only be http, https or mailto")
                }
                throw .invalidArguments("template \(template) renders a \(attribute) with a \(scheme): URL; links may only be http, https or mailto")
            }
        }
    }

    /// The lowercased scheme of `url` as a browser parses it (WHATWG URL: leading and trailing C0 controls and spaces
    /// dropped, tabs and newlines removed anywhere), or nil for a relative URL.
    static func scheme(of url: String) -> String? {
        var scalars = Array(url.unicodeScalars.filter { $0 != "\t" && $0 != "\n" && $0 != "\r" })
        while let first = scalars.first, first.value <= 0x20 { scalars.removeFirst() }
        guard let first = scalars.first, isAlpha(first) else { return nil }
        var scheme = String.UnicodeScalarView()
        for s in scalars {
            if s == ":" { return String(scheme).lowercased() }
            guard isAlpha(s) || (s.value >= 0x30 && s.value <= 0x39) || s == "+" || s == "-" || s == "." else { return nil }
            scheme.append(s)
        }
        return nil
    }

    /// The path of the first string in `value` that has a refused scheme of its own and appears in `url`.
    private static func culprit(in value: JSONValue, path: String, within url: String) -> String? {
        switch value {
        case .string(let s):
            guard let scheme = scheme(of: s), !allowedSchemes.contains(scheme) else { return nil }
            let squeezed = String(String.UnicodeScalarView(s.unicodeScalars.filter { $0 != "\t" && $0 != "\n" && $0 != "\r" }))
            let target = String(String.UnicodeScalarView(url.unicodeScalars.filter { $0 != "\t" && $0 != "\n" && $0 != "\r" }))
            return target.contains(squeezed.trimmingLeadingControls) ? path : nil
        case .array(let items):
            for (i, item) in items.enumerated() { if let found = culprit(in: item, path: "\(path)[\(i)]", within: url) { return found } }
            return nil
        case .object(let object):
            for (key, item) in object { if let found = culprit(in: item, path: "\(path).\(key)", within: url) { return found } }
            return nil
        default:
            return nil
        }
    }

    /// `(name, value)` of every attribute of every tag, names lowercased, values as written (entities not decoded).
    static func attributes(_ html: String) -> [(String, String)] {
        let s = Array(html.unicodeScalars)
        var out: [(String, String)] = []
        var i = 0
        func isSpace(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0C}" }
        while i < s.count {
            guard s[i] == "<" else { i += 1; continue }
            i += 1
            // Comments and declarations hold no attributes.
            if i < s.count, s[i] == "!" || s[i] == "/" || s[i] == "?" {
                while i < s.count, s[i] != ">" { i += 1 }
                continue
            }
            while i < s.count, !isSpace(s[i]), s[i] != ">" { i += 1 }  // the tag name
            while i < s.count, s[i] != ">" {
                while i < s.count, isSpace(s[i]) || s[i] == "/" { i += 1 }
                var name = String.UnicodeScalarView()
                while i < s.count, !isSpace(s[i]), s[i] != "=", s[i] != ">", s[i] != "/" { name.append(s[i]); i += 1 }
                while i < s.count, isSpace(s[i]) { i += 1 }
                var value = String.UnicodeScalarView()
                if i < s.count, s[i] == "=" {
                    i += 1
                    while i < s.count, isSpace(s[i]) { i += 1 }
                    if i < s.count, s[i] == "\"" || s[i] == "'" {
                        let quote = s[i]
                        i += 1
                        while i < s.count, s[i] != quote { value.append(s[i]); i += 1 }
                        i += 1
                    } else {
                        while i < s.count, !isSpace(s[i]), s[i] != ">" { value.append(s[i]); i += 1 }
                    }
                }
                if !name.isEmpty { out.append((String(name).lowercased(), String(value))) }
                else if i < s.count, s[i] != ">" { i += 1 }
            }
        }
        return out
    }

    /// Character references decoded as a browser does in an attribute value (numeric ones with or without `;`, and
    /// the named ones that matter for a scheme).
    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let named: [String: String] = [
            "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "colon": ":", "tab": "\t", "newline": "\n", "nbsp": "\u{A0}",
        ]
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            guard s[i] == "&" else { out.append(s[i]); i += 1; continue }
            var j = i + 1
            if j < s.count, s[j] == "#" {
                j += 1
                let hex = j < s.count && (s[j] == "x" || s[j] == "X")
                if hex { j += 1 }
                var digits = ""
                while j < s.count, digits.count < 8, hex ? s[j].properties.isASCIIHexDigit : (s[j].value >= 0x30 && s[j].value <= 0x39) {
                    digits.unicodeScalars.append(s[j])
                    j += 1
                }
                if let code = UInt32(digits, radix: hex ? 16 : 10), let scalar = Unicode.Scalar(code) {
                    out.append(scalar)
                    if j < s.count, s[j] == ";" { j += 1 }
                    i = j
                    continue
                }
            } else {
                var name = ""
                while j < s.count, name.count < 10, isAlpha(s[j]) { name.unicodeScalars.append(s[j]); j += 1 }
                if let replacement = named[name.lowercased()] {
                    out.append(contentsOf: replacement.unicodeScalars)
                    if j < s.count, s[j] == ";" { j += 1 }
                    i = j
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return String(out)
    }

    private static func isAlpha(_ s: Unicode.Scalar) -> Bool { (s.value >= 0x41 && s.value <= 0x5A) || (s.value >= 0x61 && s.value <= 0x7A) }
}

extension String {
    fileprivate var trimmingLeadingControls: String {
        String(String.UnicodeScalarView(unicodeScalars.drop { $0.value <= 0x20 }))
    }
}
