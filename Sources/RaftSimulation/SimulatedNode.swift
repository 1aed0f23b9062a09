import Raft
import RaftHost

/// A simulated client's handle on one attempt of one operation.
struct ClientTicket {
    /// The client's number.
    var client: Int
    /// The operation (its position in the history) the attempt is for.
    var operation: Int
}

/// One simulated member: the real host driver (nil while crashed) over a disk that survives
/// its crashes.
final class SimulatedNode<Machine: ReplicatedStateMachine> {
    let id: NodeID
    let configuration: RaftConfiguration
    let compactionInterval: LogIndex
    var driver: RaftDriver<Machine, SimulatedDisk, ClientTicket>?
    let disk = SimulatedDisk()
    /// Bumped at each crash, so ticks scheduled before it are ignored.
    var incarnation = 0

    init(id: NodeID, configuration: RaftConfiguration, compactionInterval: LogIndex) {
        self.id = id
        self.configuration = configuration
        self.compactionInterval = compactionInterval
    }

    var isUp: Bool { driver != nil }

    /// The core, while up.
    var core: RaftNode? { driver?.core }

    /// Starts (or restarts) the member from what is on disk.
    func start() {
        do throws(RaftDriverFailure) {
            driver = try RaftDriver(configuration: configuration, storage: disk, snapshotInterval: compactionInterval)
        } catch {
            preconditionFailure("node \(id): cannot start from its disk: \(error)")
        }
    }

    func crash() {
        driver = nil
        incarnation += 1
        disk.tearNextWrite = nil
    }
}
