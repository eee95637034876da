//! gRPC plumbing shared by the servers: the error-code table (domain `ErrorCode` →
//! `tonic::Status`), `grpc.health.v1`, and serving on a bound listener until shutdown.

use magnet_core::ErrorCode;
pub use tonic_health::server::HealthReporter;

/// Maps a domain error code to its gRPC code; the message goes to the caller as is.
pub fn status(code: ErrorCode, message: impl Into<String>) -> tonic::Status {
    let code = match code {
        ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Conflict => tonic::Code::FailedPrecondition,
        ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
        ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorCode::Internal => tonic::Code::Internal,
    };
    tonic::Status::new(code, message)
}

/// The inverse, for clients (the gateway) that turn gRPC errors back into domain codes.
pub fn code_of(status: &tonic::Status) -> ErrorCode {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorCode::InvalidArgument,
        tonic::Code::NotFound => ErrorCode::NotFound,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::Aborted => {
            ErrorCode::Conflict
        }
        tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ErrorCode::Unavailable,
        tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
        tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
        _ => ErrorCode::Internal,
    }
}

/// The standard health service; the overall status ("") starts as serving.
pub fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::Internal,
        ] {
            assert_eq!(code_of(&status(code, "x")), code);
        }
    }
}
