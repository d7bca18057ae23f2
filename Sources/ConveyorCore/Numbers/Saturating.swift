/// Conversions and arithmetic that cannot trap, for numbers that came from outside (a job envelope, a flag, a
/// setting) or were computed from them: out-of-range results stick at the nearest bound instead of crashing.
public enum Saturating {
    /// `value` rounded toward zero, clamped to `Int`'s range; NaN is 0.
    public static func int(_ value: Double) -> Int {
        if value.isNaN { return 0 }
        // Double(Int.max) is 2⁶³, one past Int.max; Double(Int.min) is -2⁶³ exactly.
        if value >= Double(Int.max) { return .max }
        if value <= Double(Int.min) { return .min }
        return Int(value)
    }

    /// `a + b`, stuck at `Int.max` or `Int.min` instead of overflowing.
    public static func add(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        if !overflow { return sum }
        return b > 0 ? .max : .min
    }

    /// `a · b`, stuck at `Int.max` or `Int.min` instead of overflowing.
    public static func multiply(_ a: Int, _ b: Int) -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        if !overflow { return product }
        return (a < 0) == (b < 0) ? .max : .min
    }

    /// `value` clamped to `range`; NaN is the lower bound.
    public static func clamp(_ value: Double, to range: ClosedRange<Double>) -> Double {
        if value.isNaN { return range.lowerBound }
        return min(max(value, range.lowerBound), range.upperBound)
    }
}
