import ArgumentParser
import ClusterAPI
import Foundation

/// `shoal exec TASK -- COMMAND…`: a command inside a task's sandbox, from any manager.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command inside a running task's sandbox.",
        discussion: "TASK is a task ID, an ID prefix, or SERVICE.SLOT (e.g. my-web.1).")
    @OptionGroup var daemon: DaemonAddress
    @Option(name: [.customShort("e"), .long], parsing: .singleValue, help: "Set an environment variable (KEY=VALUE).")
    var env: [String] = []
    @Argument(help: "The task.")
    var task: String
    @Argument(parsing: .captureForPassthrough, help: "-- COMMAND ARGS…")
    var command: [String] = []

    func run() async throws {
        var status: Int32 = 0
        try await reportingFailures {
            var request = Shoal_Api_ExecRequest()
            request.task = task
            request.command = command.first == "--" ? Array(command.dropFirst()) : command
            request.env = env
            guard !request.command.isEmpty else { throw CLIFailure("no command given: shoal exec TASK -- COMMAND ARGS…") }
            status = try await daemon.call { connection in
                try await connection.taskIO.exec(request, options: callOptions(timeout: .seconds(3600))) { response in
                    var status: Int32 = 0
                    for try await item in response.messages {
                        switch item.item {
                        case .stdout(let bytes): FileHandle.standardOutput.write(bytes)
                        case .stderr(let bytes): FileHandle.standardError.write(bytes)
                        case .exitCode(let code): status = code
                        case nil: break
                        }
                    }
                    return status
                }
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
