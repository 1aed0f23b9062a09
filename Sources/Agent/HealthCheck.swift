// A service's health check as the agent runs it, with docker's semantics and defaults: a
// check every `interval` inside the task's sandbox, one running past `timeout` failed,
// `retries` failures in a row make the task unhealthy, failures in the first `startPeriod`
// do not count (a success there makes it healthy). A task enters its service's rotation
// once healthy; an unhealthy one leaves it and fails, and its orchestrator replaces it.

import ClusterAPI
import Foundation
import SwiftProtobuf

/// What to run and how often, from the spec's `HealthConfig`.
struct HealthCheck: Equatable {
    /// The program and its arguments (`CMD-SHELL line` is `/bin/sh -c line`).
    var command: [String]
    var interval: Duration
    var timeout: Duration
    var retries: Int
    var startPeriod: Duration

    /// The check a spec asks for; nil when it asks for none (no test, or `NONE`).
    init?(_ config: Shoal_Api_HealthConfig) {
        guard let kind = config.test.first, kind != "NONE" else { return nil }
        switch kind {
        case "CMD-SHELL": command = ["/bin/sh", "-c", config.test.dropFirst().joined(separator: " ")]
        case "CMD": command = Array(config.test.dropFirst())
        default: command = config.test
        }
        guard !command.isEmpty else { return nil }
        interval = config.hasInterval ? Duration.seconds(config.interval.timeInterval) : .seconds(30)
        timeout = config.hasTimeout ? Duration.seconds(config.timeout.timeInterval) : .seconds(30)
        retries = config.retries > 0 ? Int(config.retries) : 3
        startPeriod = config.hasStartPeriod ? Duration.seconds(config.startPeriod.timeInterval) : .zero
    }
}

/// The verdicts of a task's checks so far.
struct HealthState: Equatable {
    enum Status: Equatable {
        /// No check has passed yet.
        case starting
        case healthy
        /// `retries` checks failed in a row (outside the start period): the task fails.
        case unhealthy
    }

    private(set) var status = Status.starting
    /// Failures in a row that count.
    private(set) var failures = 0

    /// Records one check's result, `elapsed` after the task started; the new status.
    mutating func record(passed: Bool, elapsed: Duration, of check: HealthCheck) -> Status {
        precondition(status != .unhealthy, "an unhealthy task is not checked again")
        if passed {
            failures = 0
            status = .healthy
        } else if status == .healthy || elapsed >= check.startPeriod {
            failures += 1
            if failures >= check.retries { status = .unhealthy }
        }
        return status
    }
}
