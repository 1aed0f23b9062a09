// A min-heap of timed events; ties go to the earlier-scheduled event, so a run is a pure
// function of its seed.

/// Events ordered by virtual time, then by scheduling order.
public struct EventQueue<Event> {
    /// An empty queue.
    public init() {}

    private var heap: [(time: Int, sequence: UInt64, event: Event)] = []
    private var sequence: UInt64 = 0

    public var isEmpty: Bool { heap.isEmpty }
    public var count: Int { heap.count }

    public mutating func schedule(_ event: Event, at time: Int) {
        sequence += 1
        heap.append((time, sequence, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    public mutating func popNext() -> (time: Int, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let first = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && precedes(left, smallest) { smallest = left }
            if right < heap.count && precedes(right, smallest) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (first.time, first.event)
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        heap[a].time < heap[b].time || (heap[a].time == heap[b].time && heap[a].sequence < heap[b].sequence)
    }
}
