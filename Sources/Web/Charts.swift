import Foundation
import ConveyorCore

/// Bar charts drawn on the server as SVG (no script, works offline): processed above the axis, failed below it,
/// on one scale, one pair of bars per bucket. Labels are the caller's own text and are escaped.
enum Charts {
    struct Bucket {
        var label: String
        var processed: Int?
        var failed: Int?
    }

    /// Processed bars rise from the axis and failed bars hang below it, both on one scale (a failed bar as tall as a
    /// processed one means as many jobs), with the scale written at both ends of the y axis, `unit` along it and
    /// "UTC" under the time axis. The viewBox is narrow enough that its text stays legible when a phone shrinks it.
    static func bars(_ buckets: [Bucket], title: String, unit: String = "jobs", width: Int = 640, height: Int = 200, labelEvery: Int = 10) -> String {
        let left = 56.0
        let top = 18.0
        let bottom = 30.0
        let plot = Double(height) - top - bottom
        // Counts from Redis can be anything up to Int64.max (a producer's counter): all arithmetic in Double, and
        // back to an integer only through Saturating.
        let peakProcessed = Double(max(0, buckets.compactMap(\.processed).max() ?? 0))
        let peakFailed = Double(max(0, buckets.compactMap(\.failed).max() ?? 0))
        let scale = max(1, peakProcessed, peakFailed)
        // The axis sits where the two peaks put it, so neither half is squeezed when one side is empty.
        let share = peakFailed == 0 ? 0.85 : max(0.3, min(0.7, peakProcessed / (peakProcessed + peakFailed)))
        let up = plot * share
        let axis = top + up
        let down = plot - up
        let slot = (Double(width) - left - 6) / Double(max(1, buckets.count))
        let bar = max(1, slot * 0.7)
        // One scale for both halves: `unitHeight` pixels per job above and below the axis; the larger half holds the peak.
        let unitHeight = max(up, down) / scale
        let topValue = Saturating.int((up / unitHeight).rounded())
        let bottomValue = Saturating.int((down / unitHeight).rounded())
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(width) \(height)" class="chart" role="img" aria-label="\(escape(title))">
            <title>\(escape(title))</title>
            <line x1="\(f(left - 2))" y1="\(f(axis))" x2="\(width - 4)" y2="\(f(axis))" class="axis"/>
            <line x1="\(f(left - 2))" y1="\(f(top))" x2="\(f(left - 2))" y2="\(f(top + plot))" class="axis"/>
            <text x="\(f(left - 6))" y="\(f(top + 10))" class="tick" text-anchor="end">\(topValue)</text>
            <text x="\(f(left - 6))" y="\(f(axis + 4))" class="tick" text-anchor="end">0</text>

            """
        if down > 12 { svg += "<text x=\"\(f(left - 6))\" y=\"\(f(top + plot))\" class=\"tick fail\" text-anchor=\"end\">\(bottomValue)</text>\n" }
        svg += "<text x=\"12\" y=\"\(f(top + plot / 2))\" class=\"tick\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(f(top + plot / 2)))\">\(escape(unit))</text>\n"
        for (i, b) in buckets.enumerated() {
            let x = left + Double(i) * slot
            if let p = b.processed, p > 0 {
                let h = min(up, unitHeight * Double(p))
                svg += "<rect x=\"\(f(x))\" y=\"\(f(axis - h))\" width=\"\(f(bar))\" height=\"\(f(h))\" class=\"ok\"><title>\(escape(b.label)): \(p) processed</title></rect>\n"
            }
            if let n = b.failed, n > 0 {
                let h = min(down, unitHeight * Double(n))
                svg += "<rect x=\"\(f(x))\" y=\"\(f(axis))\" width=\"\(f(bar))\" height=\"\(f(h))\" class=\"fail\"><title>\(escape(b.label)): \(n) failed</title></rect>\n"
            }
            if b.processed == nil {
                svg += "<rect x=\"\(f(x))\" y=\"\(f(axis - 1))\" width=\"\(f(bar))\" height=\"2\" class=\"none\"/>\n"
            }
            if i == buckets.count - 1 {
                svg += "<text x=\"\(f(x + bar))\" y=\"\(height - 14)\" class=\"tick\" text-anchor=\"end\">\(escape(b.label))</text>\n"
            } else if i % labelEvery == 0 && i < buckets.count - labelEvery / 2 {
                svg += "<text x=\"\(f(x))\" y=\"\(height - 14)\" class=\"tick\">\(escape(b.label))</text>\n"
            }
        }
        svg += "<text x=\"\(width - 4)\" y=\"\(height - 2)\" class=\"tick\" text-anchor=\"end\">UTC</text>\n"
        svg += "</svg>"
        return svg
    }

    private static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String { s.xmlEscaped }
}
