import Foundation
import ConveyorCore

/// Bar charts drawn on the server as SVG (no script, works offline): processed above the axis, failed below it,
/// one pair of bars per bucket. Labels are the caller's own text and are escaped.
enum Charts {
    struct Bucket {
        var label: String
        var processed: Int?
        var failed: Int?
    }

    static func bars(_ buckets: [Bucket], title: String, width: Int = 720, height: Int = 160, labelEvery: Int = 10) -> String {
        let top = 16.0
        let bottom = 22.0
        let plot = Double(height) - top - bottom
        let up = plot * 0.72
        let axis = top + up
        let down = plot - up
        let maxProcessed = max(1, buckets.compactMap(\.processed).max() ?? 1)
        let maxFailed = max(1, buckets.compactMap(\.failed).max() ?? 1)
        let slot = Double(width - 40) / Double(max(1, buckets.count))
        let bar = max(1, slot * 0.7)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(width) \(height)" class="chart" role="img" aria-label="\(escape(title))">
            <title>\(escape(title))</title>
            <line x1="36" y1="\(f(axis))" x2="\(width - 4)" y2="\(f(axis))" class="axis"/>
            <text x="2" y="\(f(top + 8))" class="tick">\(maxProcessed)</text>
            <text x="2" y="\(f(Double(height) - bottom))" class="tick fail">\(maxFailed)</text>

            """
        for (i, b) in buckets.enumerated() {
            let x = 38 + Double(i) * slot
            if let p = b.processed, p > 0 {
                let h = up * Double(p) / Double(maxProcessed)
                svg += "<rect x=\"\(f(x))\" y=\"\(f(axis - h))\" width=\"\(f(bar))\" height=\"\(f(h))\" class=\"ok\"><title>\(escape(b.label)): \(p) processed</title></rect>\n"
            }
            if let n = b.failed, n > 0 {
                let h = down * Double(n) / Double(maxFailed)
                svg += "<rect x=\"\(f(x))\" y=\"\(f(axis))\" width=\"\(f(bar))\" height=\"\(f(h))\" class=\"fail\"><title>\(escape(b.label)): \(n) failed</title></rect>\n"
            }
            if b.processed == nil {
                svg += "<rect x=\"\(f(x))\" y=\"\(f(axis - 1))\" width=\"\(f(bar))\" height=\"2\" class=\"none\"/>\n"
            }
            if i == buckets.count - 1 {
                svg += "<text x=\"\(f(x + bar))\" y=\"\(height - 6)\" class=\"tick\" text-anchor=\"end\">\(escape(b.label))</text>\n"
            } else if i % labelEvery == 0 && i < buckets.count - labelEvery / 2 {
                svg += "<text x=\"\(f(x))\" y=\"\(height - 6)\" class=\"tick\">\(escape(b.label))</text>\n"
            }
        }
        svg += "</svg>"
        return svg
    }

    private static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String { s.xmlEscaped }
}
