import Foundation
import VeilCrypto
public import VeilProtocol

/// One phase in simulated time.
public struct SimulatedPhase: Codable, Sendable, Equatable {
    /// The phase name.
    public let phase: String
    /// When the phase opened, seconds since the round started.
    public let startSeconds: Double
    /// How long it lasted, to the server's close (its closing computation included).
    public let durationSeconds: Double
    /// Its deadline.
    public let deadlineSeconds: Double
    /// Whether the server waited for the deadline: a device it asked stayed silent or answered late.
    public let waitedForDeadline: Bool
    /// Answers that arrived after the deadline: the server dropped those devices, as a real one would.
    public let cutByDeadline: Int
    /// Answers that arrived in time.
    public let inTime: Int
    /// When answers reached the server, seconds after the phase opened, sorted, at most 200 points
    /// (late ones included): the distribution to set the deadline against.
    public let arrivalSample: [Double]
    /// The median, 90th and 99th percentile of the arrival times (late ones included).
    public let arrivalP50: Double
    /// The 90th percentile.
    public let arrivalP90: Double
    /// The 99th percentile.
    public let arrivalP99: Double
}

extension SimulatedPhase {
    /// A phase from its events: `arrivals` are every answer's arrival, seconds after the phase
    /// opened, late ones included, in any order.
    public init(
        phase: Phase, startSeconds: Double, durationSeconds: Double, deadlineSeconds: Double, waitedForDeadline: Bool,
        cutByDeadline: Int, inTime: Int, arrivals: [Double]
    ) {
        let sorted = arrivals.sorted()
        self.init(
            phase: phase.rawValue, startSeconds: startSeconds, durationSeconds: durationSeconds, deadlineSeconds: deadlineSeconds,
            waitedForDeadline: waitedForDeadline, cutByDeadline: cutByDeadline, inTime: inTime,
            arrivalSample: SimulatedClock.chartSample(sorted),
            arrivalP50: SimulatedClock.percentile(0.5, of: sorted), arrivalP90: SimulatedClock.percentile(0.9, of: sorted),
            arrivalP99: SimulatedClock.percentile(0.99, of: sorted))
    }
}

extension SimulatedTiming {
    /// A round made of `phases`, one after another.
    public init(network: String, phases: [SimulatedPhase]) {
        self.init(
            network: network, roundSeconds: phases.last.map { $0.startSeconds + $0.durationSeconds } ?? 0, phases: phases,
            cutByDeadline: phases.reduce(0) { $0 + $1.cutByDeadline })
    }
}

/// A round in simulated time: what `network` and `deadlines` predict for the scenario's fleet.
public struct SimulatedTiming: Codable, Sendable, Equatable {
    /// The network the devices drew from (a profile name, or "custom").
    public let network: String
    /// The round's length, seconds.
    public let roundSeconds: Double
    /// Each phase that ran.
    public let phases: [SimulatedPhase]
    /// Devices dropped by a deadline over the round.
    public let cutByDeadline: Int
}

/// The discrete-event clock of an in-process round (issue 16): every device draws its link and
/// speed once; in each phase, a device's answer reaches the server after the request's build
/// time, one-way latency and download, its compute time (measured on this machine, times its
/// compute factor), latency and upload. Answers past the deadline are dropped, as the aggregator
/// drops them; the server handles answers one at a time in arrival order, and closes the phase at
/// the last answer when everyone asked answered, or at the deadline when anyone was silent or late
/// (a silent device's connection usually stays open, so the server cannot know sooner). As in the
/// aggregator, a phase's deadline starts once the server has built all its requests. No real
/// time is spent waiting.
struct SimulatedClock: Sendable {
    let links: [SimulatedLink]
    let deadlines: DeadlineSpec
    let networkName: String
    /// Seconds since the round started.
    var now = 0.0
    var phases: [SimulatedPhase] = []

    /// Draws every device's link from `network`, deterministically from `seed`.
    init(network: NetworkSpec, deadlines: DeadlineSpec, devices: Int, seed: UInt64) {
        links = network.links(devices: devices, seed: seed)
        self.deadlines = deadlines
        networkName = network.profile ?? "custom"
    }

    /// When device `d`'s answer reaches the server, seconds after its phase opened.
    func arrival(of d: UInt32, requestReady: Double, downBytes: Int, deviceSeconds: Double, upBytes: Int) -> Double {
        let link = links[Int(d)]
        return requestReady + link.latencySeconds + Double(downBytes) / link.downlinkBytesPerSecond + deviceSeconds * link.computeFactor
            + link.latencySeconds + Double(upBytes) / link.uplinkBytesPerSecond
    }

    /// One phase's events, gathered while it runs.
    struct PhaseEvents {
        /// Accepted answers: arrival, and the server's seconds to take it in.
        var answers: [(arrival: Double, serverSeconds: Double)] = []
        /// Every arrival, late ones and refusals included.
        var arrivals: [Double] = []
        var cut = 0
        var silent = 0
        /// When the server had built the phase's last request, seconds after the phase opened:
        /// the aggregator starts the phase's deadline then.
        var requestsBuilt = 0.0
    }

    /// Closes `phase`: advances the clock to its end and records it. `closeSeconds` is the
    /// server's measured closing computation.
    mutating func finish(_ phase: Phase, events: PhaseEvents, closeSeconds: Double) {
        let deadline = deadlines.seconds(for: phase)
        var serverFree = 0.0
        for answer in events.answers.sorted(by: { $0.arrival < $1.arrival }) {
            serverFree = max(serverFree, answer.arrival) + answer.serverSeconds
        }
        let waited = events.silent > 0 || events.cut > 0
        let closesAt = events.requestsBuilt + deadline
        let lastArrival = events.arrivals.filter { $0 <= closesAt }.max() ?? 0
        let duration = max(serverFree, waited ? closesAt : lastArrival) + closeSeconds
        phases.append(SimulatedPhase(
            phase: phase, startSeconds: now, durationSeconds: duration, deadlineSeconds: deadline, waitedForDeadline: waited,
            cutByDeadline: events.cut, inTime: events.answers.count, arrivals: events.arrivals))
        now += duration
    }

    /// Evenly spaced points of ascending `sorted`, at most about 200: what a report keeps of a
    /// distribution to draw it.
    static func chartSample(_ sorted: [Double]) -> [Double] {
        stride(from: 0, to: sorted.count, by: max(1, sorted.count / 200)).map { sorted[$0] }
    }

    /// The `p` quantile of ascending `sorted` (0 when empty).
    static func percentile(_ p: Double, of sorted: [Double]) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(p * Double(sorted.count)))]
    }

    /// The round so far.
    var timing: SimulatedTiming { SimulatedTiming(network: networkName, phases: phases) }
}
