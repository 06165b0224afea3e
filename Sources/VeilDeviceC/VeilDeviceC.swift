import Foundation
import Logging
import Synchronization
import VeilDeviceAgent

// The C ABI of `veil_device.h`: opaque handles, int error codes, a message per handle. Each
// entry point converts its arguments, calls the agent and never lets a Swift error or type cross
// the boundary.

/// What a `veil_device *` points to.
final class DeviceHandle: Sendable {
    let agent: DeviceAgent
    /// The round loop and the state directory's run lock, while it runs.
    let loop = Mutex<(task: Task<Void, Never>, lock: RunLock)?>(nil)
    /// The last error, as a C string the handle owns.
    let lastError = Mutex<UnsafeMutablePointer<CChar>>(strdup("")!)

    init(agent: DeviceAgent) { self.agent = agent }

    deinit { lastError.withLock { free($0) } }

    /// Records `message` as the last error and returns `code`.
    func fail(_ code: Int32, _ message: String) -> Int32 {
        lastError.withLock { pointer in
            free(pointer)
            pointer = strdup(message)!
        }
        return code
    }

    /// Clears the last error and returns VEIL_OK.
    func succeed() -> Int32 { fail(0, "") }
}

let veilOK: Int32 = 0, veilErrorArgument: Int32 = 1, veilErrorState: Int32 = 2, veilErrorObservation: Int32 = 3, veilErrorRunning: Int32 = 4

func handle(_ pointer: OpaquePointer?) -> DeviceHandle? {
    pointer.map { Unmanaged<DeviceHandle>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

func code(of error: AgentError) -> Int32 {
    switch error {
    case .observation: return veilErrorObservation
    default: return veilErrorState
    }
}

@_cdecl("veil_device_open")
public func veilDeviceOpen(_ directory: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let directory, let out else { return veilErrorArgument }
    let agent = DeviceAgent(directory: String(cString: directory), logger: Logger(label: "veil.device.c"))
    do { _ = try agent.status() } catch { return veilErrorState }
    out.pointee = OpaquePointer(Unmanaged.passRetained(DeviceHandle(agent: agent)).toOpaque())
    return veilOK
}

/// Records one observation through `device`.
func record(_ device: OpaquePointer?, _ feature: UnsafePointer<CChar>?, at: Double, _ make: (String, Double?) -> DeviceAgent.ObservationRecord?) -> Int32 {
    guard let h = handle(device) else { return veilErrorArgument }
    guard let feature, let record = make(String(cString: feature), at > 0 ? at : nil) else { return h.fail(veilErrorArgument, "a null argument") }
    do { try h.agent.record([record]) } catch { return h.fail(code(of: error), error.description) }
    return h.succeed()
}

@_cdecl("veil_device_record_value")
public func veilDeviceRecordValue(_ device: OpaquePointer?, _ feature: UnsafePointer<CChar>?, _ value: Double, _ at: Double) -> Int32 {
    record(device, feature, at: at) { .init(feature: $0, value: value, at: $1) }
}

@_cdecl("veil_device_record_category")
public func veilDeviceRecordCategory(_ device: OpaquePointer?, _ feature: UnsafePointer<CChar>?, _ category: UnsafePointer<CChar>?, _ at: Double) -> Int32 {
    record(device, feature, at: at) { name, date in category.map { .init(feature: name, category: String(cString: $0), at: date) } }
}

@_cdecl("veil_device_record_events")
public func veilDeviceRecordEvents(_ device: OpaquePointer?, _ feature: UnsafePointer<CChar>?, _ events: Int64, _ at: Double) -> Int32 {
    record(device, feature, at: at) { name, date in Int(exactly: events).map { .init(feature: name, events: $0, at: date) } }
}

@_cdecl("veil_device_record_json")
public func veilDeviceRecordJSON(_ device: OpaquePointer?, _ lines: UnsafePointer<CChar>?) -> Int32 {
    guard let h = handle(device) else { return veilErrorArgument }
    guard let lines else { return h.fail(veilErrorArgument, "a null argument") }
    do {
        let outcome = try h.agent.recordJSONLines(String(cString: lines), mode: .allOrNothing)
        if let problem = outcome.problems.first { return h.fail(veilErrorObservation, problem.description) }
    } catch {
        return h.fail(code(of: error), error.description)
    }
    return h.succeed()
}

@_cdecl("veil_device_start")
public func veilDeviceStart(_ device: OpaquePointer?) -> Int32 {
    guard let h = handle(device) else { return veilErrorArgument }
    let refusal: String? = h.loop.withLock { loop in
        guard loop == nil else { return "the round loop is already running" }
        do {
            let lock = try RunLock(h.agent.state)
            let agent = h.agent
            loop = (Task.detached { await agent.run() }, lock)
            return nil
        } catch { return "\(error)" }
    }
    return refusal.map { h.fail(veilErrorRunning, $0) } ?? h.succeed()
}

@_cdecl("veil_device_stop")
public func veilDeviceStop(_ device: OpaquePointer?) -> Int32 {
    guard let h = handle(device) else { return veilErrorArgument }
    guard let (task, lock) = h.loop.withLock({ loop in defer { loop = nil }; return loop }) else {
        return h.fail(veilErrorRunning, "the round loop is not running")
    }
    task.cancel()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        await task.value
        done.signal()
    }
    done.wait()
    withExtendedLifetime(lock) {}
    return h.succeed()
}

@_cdecl("veil_device_status_json")
public func veilDeviceStatusJSON(_ device: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guard let h = handle(device) else { return veilErrorArgument }
    guard let out else { return h.fail(veilErrorArgument, "a null argument") }
    do {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        out.pointee = strdup(String(decoding: try encoder.encode(try h.agent.status()), as: UTF8.self))
    } catch let error as AgentError {
        return h.fail(code(of: error), error.description)
    } catch {
        return h.fail(veilErrorState, "\(error)")
    }
    return h.succeed()
}

@_cdecl("veil_device_free_string")
public func veilDeviceFreeString(_ string: UnsafeMutablePointer<CChar>?) {
    free(string)
}

@_cdecl("veil_device_last_error")
public func veilDeviceLastError(_ device: OpaquePointer?) -> UnsafePointer<CChar>? {
    guard let h = handle(device) else { return nil }
    return h.lastError.withLock { UnsafePointer($0) }
}

@_cdecl("veil_device_close")
public func veilDeviceClose(_ device: OpaquePointer?) {
    guard let device else { return }
    _ = veilDeviceStop(device)
    Unmanaged<DeviceHandle>.fromOpaque(UnsafeRawPointer(device)).release()
}
