public import ConveyorCore

/// How a helper process failed its job, as opposed to the operation it ran.
extension ErrorClass {
    /// The helper spoke a broken frame, or answered with neither result nor error.
    public static let helperProtocolError: ErrorClass = "HelperProtocolError"
    /// The helper knows no operation of the requested name (worker and helper binaries differ).
    public static let unknownHelperOperation: ErrorClass = "UnknownHelperOperation"
    /// The helper's answer carried no error class.
    public static let helperError: ErrorClass = "HelperError"
    /// The helper passed its job's deadline and was killed.
    public static let helperTimeout: ErrorClass = "HelperTimeout"
    /// The helper was killed because its job was cancelled.
    public static let helperCancelled: ErrorClass = "HelperCancelled"
    /// The helper exited or died from a signal before answering.
    public static let helperCrashed: ErrorClass = "HelperCrashed"
    /// The helper ran out of memory: its address-space limit, or the kernel's OOM killer.
    public static let helperOutOfMemory: ErrorClass = "HelperOutOfMemory"
    /// The helper used up its CPU-time limit (SIGXCPU).
    public static let helperCPULimit: ErrorClass = "HelperCPULimit"
    /// The worker could not start a helper process.
    public static let helperSpawnFailed: ErrorClass = "HelperSpawnFailed"
}
