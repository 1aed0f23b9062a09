// A linearizability checker for key-value histories, after Wing & Gong (1993) with the
// memoization of Lowe (2017) as Porcupine does it. Linearizability is local (Herlihy & Wing),
// so each key's history is checked on its own, which keeps the search small.

/// One client operation on one key as the client saw it.
public struct KeyValueOperation: Sendable, Hashable {
    /// What the client asked.
    public enum Action: Sendable, Hashable {
        /// Set the key to a value unique in the history.
        case write([UInt8])
        /// Read the key; `result` is what came back (nil: the key was absent).
        case read(result: [UInt8]?)
    }

    /// The key.
    public var key: String
    /// The operation and, for reads, its result.
    public var action: Action
    /// When the client invoked it.
    public var call: Int
    /// When the client got the answer; nil when it never did (the write may or may not have
    /// taken effect, at any time after `call`).
    public var response: Int?

    /// Creates an operation record.
    public init(key: String, action: Action, call: Int, response: Int?) {
        self.key = key
        self.action = action
        self.call = call
        self.response = response
    }
}

/// Checks histories of ``KeyValueOperation``s against a sequential register per key.
public enum LinearizabilityChecker {
    /// The keys whose history has no linearization (empty: the whole history is linearizable).
    public static func violations(in history: [KeyValueOperation]) -> [String] {
        let byKey = Dictionary(grouping: history, by: \.key)
        return byKey.keys.sorted().filter { !isLinearizable(byKey[$0]!) }
    }

    /// Whether one key's operations can be ordered so that each read returns the latest write,
    /// every operation taking effect between its call and its response.
    static func isLinearizable(_ operations: [KeyValueOperation]) -> Bool {
        // Reads that never returned tell nothing; drop them.
        let operations = operations.filter { operation in
            if case .read = operation.action, operation.response == nil { return false }
            return true
        }
        guard !operations.isEmpty else { return true }
        // Values become small integers; 0 is "absent".
        var valueIDs: [[UInt8]: Int] = [:]
        func valueID(_ value: [UInt8]?) -> Int {
            guard let value else { return 0 }
            if let id = valueIDs[value] { return id }
            let id = valueIDs.count + 1
            valueIDs[value] = id
            return id
        }
        let effects: [(isWrite: Bool, value: Int)] = operations.map { operation in
            switch operation.action {
            case .write(let value): (true, valueID(value))
            case .read(let result): (false, valueID(result))
            }
        }

        // Events in time order; at equal times calls come first (treated as concurrent, the
        // lenient reading), unanswered operations return after everything.
        struct Event { var operation: Int; var isCall: Bool; var time: Int }
        var events: [Event] = []
        for (position, operation) in operations.enumerated() {
            events.append(Event(operation: position, isCall: true, time: operation.call))
            events.append(Event(operation: position, isCall: false, time: operation.response ?? Int.max))
        }
        events.sort { ($0.time, $0.isCall ? 0 : 1, $0.operation) < ($1.time, $1.isCall ? 0 : 1, $1.operation) }

        // A doubly linked list over the events, so operations can be lifted out and put back.
        let count = events.count
        var next = Array(1...count)  // count = end
        var previous = Array(-1..<(count - 1))
        var returnPosition = [Int](repeating: 0, count: operations.count)
        for (position, event) in events.enumerated() where !event.isCall { returnPosition[event.operation] = position }
        var head = 0

        func lift(_ callPosition: Int) {
            for position in [callPosition, returnPosition[events[callPosition].operation]] {
                if previous[position] >= 0 { next[previous[position]] = next[position] } else { head = next[position] }
                if next[position] < count { previous[next[position]] = previous[position] }
            }
        }
        func unlift(_ callPosition: Int) {
            for position in [returnPosition[events[callPosition].operation], callPosition] {
                if previous[position] >= 0 { next[previous[position]] = position } else { head = position }
                if next[position] < count { previous[next[position]] = position }
            }
        }

        var linearized = [UInt64](repeating: 0, count: (operations.count + 63) / 64)
        var state = 0
        var stack: [(callPosition: Int, stateBefore: Int)] = []
        var seen = Set<[UInt64]>()
        var cursor = head
        var steps = 0
        let stepLimit = 5_000_000
        while head < count {
            steps += 1
            precondition(steps < stepLimit, "linearizability search too large")
            if cursor >= count { return false }  // Defensive: the list ran out without a return.
            let event = events[cursor]
            if event.isCall {
                let effect = effects[event.operation]
                let newState = effect.isWrite ? effect.value : state
                let legal = effect.isWrite || effect.value == state
                var withThis = linearized
                withThis[event.operation / 64] |= 1 << UInt64(event.operation % 64)
                var key = withThis
                key.append(UInt64(newState))
                if legal && seen.insert(key).inserted {
                    stack.append((cursor, state))
                    linearized = withThis
                    state = newState
                    lift(cursor)
                    cursor = head
                } else {
                    cursor = next[cursor]
                }
            } else {
                // A response whose operation has not taken effect yet: undo the last choice.
                guard let (callPosition, stateBefore) = stack.popLast() else { return false }
                let operation = events[callPosition].operation
                linearized[operation / 64] &= ~(1 << UInt64(operation % 64))
                state = stateBefore
                unlift(callPosition)
                cursor = next[callPosition]
            }
        }
        return true
    }
}
