import DequeModule

/// The devices waiting for a round, indexed by the windows each offers (SPEC.md §12.1), so that
/// admitting, leaving, forming a cohort and expiring cost time in the devices and windows they
/// touch, never in the size of the room. Plain rounds (no feature set) put every device under
/// one key.
///
/// Queues are cleaned lazily: a member that left, or was taken for another window, stays in the
/// other windows' queues as a stale ticket until it reaches their front; a ticket is live only
/// while its sequence number is the member's current one.
struct WaitingRoom<Member: AnyObject> {
    private struct Entry {
        let member: Member
        var windows: [Int]
        let since: ContinuousClock.Instant
        let sequence: Int
    }

    private struct Ticket {
        let id: ObjectIdentifier
        let sequence: Int
    }

    private var entries: [ObjectIdentifier: Entry] = [:]
    /// Per window, its members in the order they take places in a cohort.
    private var queues: [Int: Deque<Ticket>] = [:]
    /// Per window, how many live members offer it.
    private var counts: [Int: Int] = [:]
    /// Every member, in the order their waits end (oldest `since` first).
    private var arrivals: Deque<Ticket> = []
    private var nextSequence = 0

    /// The number of members waiting.
    var count: Int { entries.count }

    /// Whether nobody waits.
    var isEmpty: Bool { entries.isEmpty }

    /// Adds `member`, offering `windows` (at least one), at the back of each window's queue, or
    /// at the front when it goes back to waiting (`returning`) after a cohort could not use it.
    mutating func add(_ member: Member, windows: [Int], since: ContinuousClock.Instant, returning: Bool = false) {
        precondition(!windows.isEmpty, "a waiting member offers at least one window")
        let id = ObjectIdentifier(member)
        remove(member)
        nextSequence += 1
        let ticket = Ticket(id: id, sequence: nextSequence)
        entries[id] = Entry(member: member, windows: windows, since: since, sequence: nextSequence)
        for window in windows {
            if returning { queues[window, default: []].prepend(ticket) } else { queues[window, default: []].append(ticket) }
            counts[window, default: 0] += 1
        }
        if returning { arrivals.prepend(ticket) } else { arrivals.append(ticket) }
    }

    /// Removes `member`; false when it was not waiting.
    @discardableResult
    mutating func remove(_ member: Member) -> Bool {
        guard let entry = entries.removeValue(forKey: ObjectIdentifier(member)) else { return false }
        for window in entry.windows { decrement(window) }
        return true
    }

    /// The windows `member` offers, when it waits.
    func windows(of member: Member) -> [Int]? { entries[ObjectIdentifier(member)]?.windows }

    /// Takes the next cohort out of the room: from the oldest window that `maximum` members
    /// offer, or, once the gather deadline passed, that at least `minimum` offer; at most
    /// `maximum` members, in queue order. Members for which `usable` is false (their stream
    /// closed) are dropped on the way. Nil when no window qualifies.
    mutating func takeCohort(
        maximum: Int, minimum: Int, deadlinePassed: Bool, usable: (Member) -> Bool
    ) -> (window: Int, members: [Member])? {
        let needed = deadlinePassed ? minimum : maximum
        while let window = counts.filter({ $0.value >= needed }).keys.min() {
            var taken: [Entry] = []
            var dropped = 0
            while taken.count < maximum, let ticket = queues[window]?.popFirst() {
                guard let entry = entries[ticket.id], entry.sequence == ticket.sequence else { continue }
                remove(entry.member)
                if usable(entry.member) { taken.append(entry) } else { dropped += 1 }
            }
            if taken.count >= needed { return (window, taken.map(\.member)) }
            // Closed streams left too few: put the others back where they were, then look again
            // (the counts no longer include the closed ones).
            for entry in taken.reversed() {
                add(entry.member, windows: entry.windows, since: entry.since, returning: true)
            }
            if dropped == 0 { return nil }
        }
        return nil
    }

    /// Removes and returns the members that have waited longer than `limit` at `now`.
    mutating func expire(waitingLongerThan limit: Duration, at now: ContinuousClock.Instant) -> [Member] {
        var expired: [Member] = []
        while let ticket = arrivals.first {
            guard let entry = entries[ticket.id], entry.sequence == ticket.sequence else {
                arrivals.removeFirst()
                continue
            }
            guard now - entry.since > limit else { break }
            arrivals.removeFirst()
            remove(entry.member)
            expired.append(entry.member)
        }
        return expired
    }

    /// Removes and returns every member.
    mutating func removeAll() -> [Member] {
        let members = entries.values.map(\.member)
        self = WaitingRoom()
        return members
    }

    /// One live member fewer offers `window`. A window nobody offers any more loses its queue
    /// (every ticket in it is stale); a queue mostly of stale tickets is compacted, so stale
    /// tickets never outnumber live ones by much.
    private mutating func decrement(_ window: Int) {
        let left = (counts[window] ?? 1) - 1
        guard left > 0 else {
            counts[window] = nil
            queues[window] = nil
            return
        }
        counts[window] = left
        if let queue = queues[window], queue.count > 2 * left + 64 {
            queues[window] = Deque(queue.filter { entries[$0.id]?.sequence == $0.sequence })
        }
    }
}
