import Dispatch
import VeilCrypto

/// Runs independent reconstructions on several threads; results come back in input order.
enum ParallelMap {
    /// `body` for every index in `0..<count`, on `workers` threads, in index order.
    static func run<T: Sendable>(count: Int, workers: Int, _ body: @Sendable (Int) -> T) -> [T] {
        run(count: count, workers: workers, state: { _ in () }) { index, _ in body(index) }
    }

    /// `body` for every index, each worker with its own random source seeded from `seeds` (one
    /// per worker) and its own cache of Lagrange bases.
    static func run<T: Sendable>(
        count: Int, workers: Int, seeds: [SecretBytes],
        _ body: @Sendable (Int, inout SeededRandomSource, inout [[UInt32]: LagrangeBasis]) -> T
    ) -> [T] {
        run(count: count, workers: workers, state: { worker in (try! SeededRandomSource(seed: seeds[worker]), [[UInt32]: LagrangeBasis]()) }) {
            index, state in body(index, &state.0, &state.1)
        }
    }

    /// The one loop: worker w makes its state with `state(w)` and takes indices w, w + workers, ….
    private static func run<T: Sendable, State>(
        count: Int, workers: Int, state: @Sendable (Int) -> State, _ body: @Sendable (Int, inout State) -> T
    ) -> [T] {
        let slots = UnsafeSlots<T>(count: count)
        defer { slots.deallocate() }
        let workers = max(1, workers)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var own = state(worker)
            var index = worker
            while index < count {
                slots.store(body(index, &own), at: index)
                index += workers
            }
        }
        return slots.collect()
    }
}

/// Runs mask jobs on several threads, each worker folding its jobs into its own partial sum with
/// its own mask generator.
enum ParallelReduce {
    static func run(
        count: Int, workers: Int, algorithm: PRGAlgorithm, makePartial: @Sendable () -> ModularVector,
        _ body: @Sendable (Int, inout ModularVector, MaskGenerator) -> RoundAbortReason?
    ) -> [Result<ModularVector, RoundAbortReason>] {
        let slots = UnsafeSlots<Result<ModularVector, RoundAbortReason>>(count: workers)
        defer { slots.deallocate() }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var partial = makePartial()
            var failure: RoundAbortReason?
            let generator = MaskGenerator(algorithm: algorithm)
            var index = worker
            while index < count, failure == nil {
                failure = body(index, &partial, generator)
                index += workers
            }
            slots.store(failure.map { .failure($0) } ?? .success(partial), at: worker)
        }
        return slots.collect()
    }
}

/// Fixed slots written by distinct threads at distinct indices, read after all writers finished.
final class UnsafeSlots<T>: @unchecked Sendable {
    private let buffer: UnsafeMutablePointer<T?>
    private let count: Int

    init(count: Int) {
        self.count = count
        buffer = .allocate(capacity: max(count, 1))
        buffer.initialize(repeating: nil, count: max(count, 1))
    }

    /// Stores `value` at `index`; each index must be written by one thread only.
    func store(_ value: T, at index: Int) { buffer[index] = value }

    /// Every slot's value; call after all writers have finished.
    func collect() -> [T] { (0..<count).map { buffer[$0]! } }

    func deallocate() {
        buffer.deinitialize(count: max(count, 1))
        buffer.deallocate()
    }
}
