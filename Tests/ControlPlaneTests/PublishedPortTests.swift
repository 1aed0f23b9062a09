import ClusterAPI
@testable import ControlPlane
import Testing

/// The allocator's published ports: numbers from swarm's dynamic range for ports without
/// one, never a number the same spec asks for explicitly or another service holds.
@Suite struct PublishedPortTests {
    func port(_ published: UInt32, target: UInt32) -> Shoal_Api_PortConfig {
        var port = Shoal_Api_PortConfig()
        port.publishedPort = published
        port.targetPort = target
        port.publishMode = .ingress
        port.protocol = .tcp
        return port
    }

    @Test func aPortWithoutANumberNeverTakesOneTheSpecAsksForLater() throws {
        var allocator = NetworkAllocator(networks: [], services: [], tasks: [])
        let ports = try allocator.publish([port(0, target: 80), port(30000, target: 81)], holding: [])
        #expect(ports.map(\.publishedPort) == [30001, 30000])
    }

    @Test func aDynamicPortSkipsThoseOtherServicesHoldAndAServiceKeepsItsOwn() throws {
        var other = Shoal_Api_Service()
        other.id = "other"
        other.endpoint.ports = [port(30000, target: 80)]
        var allocator = NetworkAllocator(networks: [], services: [other], tasks: [])
        let first = try allocator.publish([port(0, target: 80)], holding: [])
        #expect(first.map(\.publishedPort) == [30001])
        // Updated later with the same target, the service keeps its number unless the spec
        // now asks for that number on another port.
        var again = NetworkAllocator(networks: [], services: [other], tasks: [])
        #expect(try again.publish([port(0, target: 80)], holding: first).map(\.publishedPort) == [30001])
        var moved = NetworkAllocator(networks: [], services: [other], tasks: [])
        #expect(try moved.publish([port(0, target: 80), port(30001, target: 90)], holding: first).map(\.publishedPort) == [30002, 30001])
    }
}
