//! Error codes: the one table from a domain error's kind to what callers see.
//!
//! Each service's errors name their causes; each maps to one [`ErrorCode`], and the code alone
//! decides the HTTP status (gateway) and the gRPC code (runtime's `grpc` module).

/// What kind of failure a caller is looking at, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request itself is wrong (bad magnet, bad id shape, hostile path).
    InvalidArgument,
    /// The named task, node or file does not exist.
    NotFound,
    /// The request conflicts with what exists (e.g. a transition backwards).
    Conflict,
    /// The node cannot take more work now (disk floor, limits).
    ResourceExhausted,
    /// A dependency (NATS, a node) is unreachable; retrying later may work.
    Unavailable,
    /// The caller is not logged in.
    Unauthenticated,
    /// The caller is logged in but may not do this.
    PermissionDenied,
    /// A bug or an unexpected I/O failure.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that the gateway answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::ResourceExhausted => 507,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}
