// Lifeguard's dynamic suspicion timeout (Dadgar et al., 2018, §IV-B): a suspicion starts with
// a long timeout that shrinks, logarithmically, as independent members confirm it. A real
// failure is confirmed quickly by many; a false one, caused by one slow prober, is not.

import Foundation

/// One member's suspicion of another.
struct Suspicion {
    /// When this member started suspecting.
    let start: Int
    /// The timeout once `expectedConfirmations` have arrived.
    let minimum: Int
    /// The timeout with no confirmation.
    let maximum: Int
    /// Lifeguard's K.
    let expectedConfirmations: Int
    /// The incarnation suspected.
    let incarnation: UInt64
    /// Who has claimed the suspicion, the first claimant included.
    private(set) var claimants: Set<MemberName>
    /// When the member is declared dead unless it refutes (kept up to date by `confirm`):
    /// `max − (max − min) × log(c + 1) / log(K + 1)` after the start, never below `min`.
    private(set) var deadline = 0

    init(start: Int, minimum: Int, maximum: Int, expectedConfirmations: Int, incarnation: UInt64, from: MemberName) {
        precondition(minimum > 0 && maximum >= minimum, "suspicion timeouts must be ordered")
        self.start = start
        self.minimum = minimum
        self.maximum = maximum
        self.expectedConfirmations = expectedConfirmations
        self.incarnation = incarnation
        claimants = [from]
        deadline = computeDeadline()
    }

    /// Confirmations beyond the first claim.
    var confirmations: Int { claimants.count - 1 }

    /// Records a claim by `member`; true when it is a new, independent one.
    mutating func confirm(by member: MemberName) -> Bool {
        guard confirmations < expectedConfirmations, claimants.insert(member).inserted else { return false }
        deadline = computeDeadline()
        return true
    }

    private func computeDeadline() -> Int {
        guard expectedConfirmations > 0 else { return start + minimum }
        let fraction = log(Double(confirmations + 1)) / log(Double(expectedConfirmations + 1))
        let timeout = Double(maximum) - Double(maximum - minimum) * fraction
        return start + max(minimum, Int(timeout.rounded(.up)))
    }
}
