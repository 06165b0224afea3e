import Testing
@testable import VeilAggregator

/// The waiting room's indexing by window (issue 13: H2, and the O(n) scans of L3).
@Suite struct WaitingRoomTests {
    final class Member: CustomStringConvertible {
        let name: Int
        var closed = false
        init(_ name: Int) { self.name = name }
        var description: String { "m\(name)" }
    }

    static func take(_ room: inout WaitingRoom<Member>, maximum: Int = 3, minimum: Int = 2, deadline: Bool = false) -> (Int, [Int])? {
        room.takeCohort(maximum: maximum, minimum: minimum, deadlinePassed: deadline, usable: { !$0.closed }).map { ($0.window, $0.members.map(\.name)) }
    }

    @Test func theOldestWindowThatQualifiesFormsFirstInArrivalOrder() {
        var room = WaitingRoom<Member>()
        let members = (0..<6).map(Member.init)
        room.add(members[0], windows: [20], since: .now)
        room.add(members[1], windows: [10, 20], since: .now)
        room.add(members[2], windows: [20], since: .now)
        room.add(members[3], windows: [10, 20], since: .now)
        // Window 20 has four offers (a full cohort of 3); window 10 only two.
        #expect(Self.take(&room)! == (20, [0, 1, 2]))
        // Member 1 left with that cohort, so window 10 holds only member 3.
        #expect(Self.take(&room, deadline: true) == nil)
        room.add(members[4], windows: [10], since: .now)
        #expect(Self.take(&room) == nil)
        #expect(Self.take(&room, deadline: true)! == (10, [3, 4]))
        #expect(room.isEmpty)
    }

    @Test func closedMembersAreDroppedAndTheRestKeepTheirPlaceAndWindows() {
        var room = WaitingRoom<Member>()
        let members = (0..<4).map(Member.init)
        room.add(members[0], windows: [10, 20], since: .now)
        room.add(members[1], windows: [10], since: .now)
        room.add(members[2], windows: [10], since: .now)
        members[1].closed = true
        members[2].closed = true
        // Three offer window 10, but two of them are gone: nobody is taken and member 0 still
        // waits under both its windows, first in line.
        #expect(Self.take(&room, maximum: 3, minimum: 2, deadline: true) == nil)
        #expect(room.count == 1)
        #expect(room.windows(of: members[0]) == [10, 20])
        room.add(members[3], windows: [20], since: .now)
        #expect(Self.take(&room, deadline: true)! == (20, [0, 3]))
    }

    @Test func returningMembersGoToTheFront() {
        var room = WaitingRoom<Member>()
        let members = (0..<4).map(Member.init)
        for m in members.prefix(3) { room.add(m, windows: [10], since: .now) }
        room.add(members[3], windows: [10], since: .now, returning: true)
        #expect(Self.take(&room, maximum: 2)! == (10, [3, 0]))
    }

    @Test func expiryFollowsWaitingTimeAndSkipsMembersThatLeft() {
        var room = WaitingRoom<Member>()
        let start = ContinuousClock.now
        let members = (0..<4).map(Member.init)
        for (i, m) in members.enumerated() { room.add(m, windows: [10], since: start + .seconds(i)) }
        room.remove(members[1])
        let expired = room.expire(waitingLongerThan: .seconds(10), at: start + .seconds(12.5))
        #expect(expired.map(\.name) == [0, 2])
        #expect(room.count == 1)
    }

    /// Many members offering many windows, taken in full cohorts: every member is taken exactly
    /// once and the room ends empty with no stale state left behind.
    @Test func aLargeRoomEmptiesExactlyOnce() {
        var room = WaitingRoom<Member>()
        let members = (0..<20_000).map(Member.init)
        for m in members { room.add(m, windows: Array(stride(from: m.name % 5, through: 10, by: 5)), since: .now) }
        var seen = Set<Int>()
        while let (_, taken) = Self.take(&room, maximum: 100, minimum: 10, deadline: true) {
            for name in taken { #expect(seen.insert(name).inserted) }
        }
        #expect(seen.count == members.count)
        #expect(room.isEmpty)
    }
}
