import ArgumentParser
import ClusterAPI
import Foundation

/// Which daemon the CLI talks to: `-H`, else `SHOAL_HOST`, else the default socket — as
/// `docker -H` / `DOCKER_HOST`.
struct DaemonAddress: ParsableArguments {
    @Option(name: [.customShort("H"), .customLong("host")], help: "The daemon's socket, unix:///path (or SHOAL_HOST).")
    var host: String?

    /// The address chosen.
    var target: String {
        host ?? ProcessInfo.processInfo.environment["SHOAL_HOST"] ?? "unix:///run/shoal/shoal.sock"
    }

    /// Runs `body` on a connection to the daemon; an API error becomes one line and exit 1.
    func call<T: Sendable>(_ body: (APIConnection) async throws -> T) async throws -> T {
        let connection: APIConnection
        do {
            connection = try APIConnection(to: try APITarget(parsing: target))
        } catch {
            throw CLIFailure("cannot reach the daemon at \(target): \(APIError(error).message)")
        }
        defer { connection.close() }
        do {
            return try await body(connection)
        } catch {
            let failure = APIError(error)
            if failure.code == .unavailable, failure.reason == .unavailable, case .unixSocket(let path) = connection.target,
                !FileManager.default.fileExists(atPath: path)
            {
                throw CLIFailure("cannot connect to the shoal daemon at \(target): is `shoal daemon` running? (set -H or SHOAL_HOST)")
            }
            throw CLIFailure(failure.message)
        }
    }
}

/// A failure the CLI reports as one line on stderr, exiting 1.
struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Runs an async command body, printing a ``CLIFailure`` as `Error: …` and exiting 1.
func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as CLIFailure {
        FileHandle.standardError.write(Data("Error: \(failure.description)\n".utf8))
        throw ExitCode(1)
    }
}

/// The calls' deadline.
let cliCallOptions = callOptions(timeout: .seconds(30))
