public import ConveyorCore

/// The push jobs' error classes.
extension ErrorClass {
    /// The endpoint is not an https URL of a public host (an IP literal, a name resolving to loopback, private or
    /// link-local addresses, a bad port or characters).
    public static let pushEndpointRefused: ErrorClass = "PushEndpointRefused"
    /// The payload is over 3,993 bytes once encoded, or the push service answered 413.
    public static let payloadTooLarge: ErrorClass = "PayloadTooLarge"
    /// The push service refused the request (400, 401, 403 and other 4xx): its reason is in the message.
    public static let pushRejected: ErrorClass = "PushRejected"
    /// The push service failed (5xx without `Retry-After`); retried as a failed attempt.
    public static let pushServiceUnavailable: ErrorClass = "PushServiceUnavailable"
    /// The push service asked every sender to wait (429, or 503 with `Retry-After`), now or in another job still
    /// cooling down: the job runs again after the wait without spending an attempt.
    public static let pushThrottled: ErrorClass = "PushThrottled"
    /// The push service could not be reached (DNS, connect, TLS, timeout).
    public static let pushTransport: ErrorClass = "PushTransport"
    /// No VAPID key or subject is configured (`CONVEYOR_VAPID_PRIVATE_KEY`, `CONVEYOR_VAPID_SUBJECT`).
    public static let pushConfiguration: ErrorClass = "PushConfiguration"
    /// A gone subscription could not be recorded in `conveyor.push_gone`; retried.
    public static let pushGoneStoreFailed: ErrorClass = "PushGoneStoreFailed"
}
