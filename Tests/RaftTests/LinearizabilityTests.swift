import RaftSimulation
import Testing

/// The history checker itself: it must accept what is linearizable and refuse what is not,
/// or a green simulation means nothing.
@Suite struct LinearizabilityTests {
    private func write(_ value: String, _ call: Int, _ response: Int?) -> KeyValueOperation {
        KeyValueOperation(key: "k", action: .write(Array(value.utf8)), call: call, response: response)
    }

    private func read(_ value: String?, _ call: Int, _ response: Int) -> KeyValueOperation {
        KeyValueOperation(key: "k", action: .read(result: value.map { Array($0.utf8) }), call: call, response: response)
    }

    @Test func sequentialAndConcurrentHistoriesThatLinearizeAreAccepted() {
        #expect(LinearizabilityChecker.violations(in: [write("a", 0, 1), read("a", 2, 3)]).isEmpty)
        // Overlapping writes: a read may see either, then must keep seeing the later one.
        #expect(LinearizabilityChecker.violations(in: [write("a", 0, 10), write("b", 1, 9), read("a", 11, 12)]).isEmpty)
        // A write that never answered may have happened...
        #expect(LinearizabilityChecker.violations(in: [write("a", 0, 1), write("b", 2, nil), read("b", 5, 6)]).isEmpty)
        // ... or not.
        #expect(LinearizabilityChecker.violations(in: [write("a", 0, 1), write("b", 2, nil), read("a", 5, 6)]).isEmpty)
        #expect(LinearizabilityChecker.violations(in: [read(nil, 0, 1)]).isEmpty)
    }

    @Test func staleAndImpossibleReadsAreRefused() {
        // A stale read: "b" was written completely before the read started.
        #expect(LinearizabilityChecker.violations(in: [write("a", 0, 1), write("b", 2, 3), read("a", 4, 5)]) == ["k"])
        // A read of a value nobody wrote.
        #expect(LinearizabilityChecker.violations(in: [write("a", 0, 1), read("z", 2, 3)]) == ["k"])
        // Values going back in time: a, then b, then a again with no second write of a.
        #expect(LinearizabilityChecker.violations(in: [
            write("a", 0, 10), write("b", 0, 10), read("b", 11, 12), read("a", 13, 14),
        ]) == ["k"])
        // A read before any write completes sees nothing or the write, not the future's value.
        #expect(LinearizabilityChecker.violations(in: [read("a", 0, 1), write("a", 2, 3)]) == ["k"])
    }
}
