// The one way a Shoal server says why a call failed and a client learns it: a gRPC status
// whose details carry a Shoal_Api_ErrorDetail (errors.proto), packed as google.rpc.Status in
// the "grpc-status-details-bin" trailer by GRPCProtobuf. Clients branch on `reason`, never
// on the text; the text is what the CLI prints.

import GRPCCore
import GRPCProtobuf
import SwiftProtobuf

/// A failed API call: Shoal's reason, what to tell the user, and the object concerned.
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// The structured detail.
    public var detail: Shoal_Api_ErrorDetail
    /// The gRPC status code the call ended with.
    public var code: RPCError.Code

    /// Why it failed.
    public var reason: Shoal_Api_ErrorDetail.Reason { detail.reason }
    /// What was wrong and what to do.
    public var message: String { detail.message }

    /// An error for `reason` with `message`; the gRPC code follows from the reason.
    public init(
        _ reason: Shoal_Api_ErrorDetail.Reason, _ message: String, objectID: String = "", field: String = "",
        leaderAddress: String = ""
    ) {
        var detail = Shoal_Api_ErrorDetail()
        detail.reason = reason
        detail.message = message
        detail.objectID = objectID
        detail.field = field
        detail.leaderAddr = leaderAddress
        self.detail = detail
        self.code = Self.code(for: reason)
    }

    /// The error a client caught, as an ``APIError``: the server's detail when it sent one,
    /// else one made from the gRPC status (a transport failure, a server that is not Shoal's).
    public init(_ error: any Error) {
        if let error = error as? APIError {
            self = error
            return
        }
        guard let rpcError = error as? RPCError else {
            self = APIError(.unavailable, "\(error)")
            return
        }
        if let status = try? rpcError.unpackGoogleRPCStatus(),
            let any = status.details.lazy.compactMap(\.any).first,
            let detail = try? Shoal_Api_ErrorDetail(unpackingAny: any)
        {
            self = APIError(.unspecified, "")
            self.detail = detail
            self.code = status.code
            return
        }
        let reason: Shoal_Api_ErrorDetail.Reason =
            switch rpcError.code {
            case .unavailable, .deadlineExceeded: .unavailable
            case .permissionDenied, .unauthenticated: .permissionDenied
            case .notFound: .notFound
            case .invalidArgument: .invalidSpec
            default: .unspecified
            }
        var message = rpcError.message.isEmpty ? "\(rpcError.code)" : rpcError.message
        if let cause = rpcError.cause { message += " (\(cause))" }  // Transport failures say why only here.
        self = APIError(reason, message)
        self.code = rpcError.code
    }

    /// The error a server throws for this failure.
    public var rpcError: RPCError {
        var details: [ErrorDetails] = []
        if let any = try? Google_Protobuf_Any(message: detail) { details.append(.any(any)) }
        return RPCError(GoogleRPCStatus(code: code, message: message, details: details))
    }

    public var description: String { message }

    /// The gRPC status code of each reason (errors.proto gives the same table).
    public static func code(for reason: Shoal_Api_ErrorDetail.Reason) -> RPCError.Code {
        switch reason {
        case .notFound: .notFound
        case .nameConflict: .alreadyExists
        case .versionConflict: .aborted
        case .invalidSpec, .invalidSession: .invalidArgument
        case .notLeader, .quorumLost, .unavailable: .unavailable
        case .permissionDenied: .permissionDenied
        case .invalidToken: .unauthenticated
        case .inUse, .notManager, .failedPrecondition: .failedPrecondition
        case .exhausted: .resourceExhausted
        case .historyCompacted: .outOfRange
        case .unspecified, .UNRECOGNIZED: .unknown
        }
    }
}
