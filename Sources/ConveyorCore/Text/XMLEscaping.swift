extension String {
    /// The text with `& < > " '` replaced by entities: safe inside XML and HTML element text and quoted attribute
    /// values (S3 request bodies, the dashboard's SVG charts).
    public var xmlEscaped: String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for character in self {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
