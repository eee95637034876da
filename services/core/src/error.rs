//! Error codes: the one table from a domain error's kind to what callers see.
//!
//! Each service's errors name their causes; each maps to one [`ErrorCode`], which decides the
//! gRPC code (runtime's `grpc` module) and the HTTP status (gateway), and to one [`Reason`],
//! the precise cause that clients read (`"code"` in the API's errors).

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

/// The precise cause of an error, for clients to act on and to show in their user's language:
/// `"code"` in the gateway's error answers (docs/api.md, "Error codes"), the `magnet-reason`
/// metadata of gRPC errors between services. The first eight are the general kinds, one per
/// [`ErrorCode`], for errors with no more precise cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidArgument,
    NotFound,
    Conflict,
    ResourceExhausted,
    Unavailable,
    Unauthenticated,
    PermissionDenied,
    Internal,
    BodyInvalid,
    BodyTooLarge,
    MagnetInvalid,
    TorrentInvalid,
    TorrentTooLarge,
    SourceRequired,
    TaskIdInvalid,
    TaskNotFound,
    TooManyTasks,
    NodeNotFound,
    NoNodeOnline,
    NodeUnavailable,
    NodeIsOriginal,
    DiskFull,
    LoginRequired,
    SessionExpired,
    LoginFailed,
    RateLimited,
    AccountBanned,
    AdminsOnly,
    NotOwner,
    RegistrationClosed,
    AccountsDisabled,
    UsernameInvalid,
    PasswordInvalid,
    UsernameTaken,
    UserNotFound,
    CannotBanSelf,
    TooManyStreams,
    CrossOrigin,
    SignalingUnavailable,
    SessionUnknown,
    SessionInUse,
    RangeNotSatisfiable,
    FileNotFound,
    FileRefused,
    FileTooLarge,
    SegmentNotReady,
    WorkerTokenRequired,
    WorkerTokenWrong,
    OriginalWorkersClosed,
    RouteNotFound,
}

/// Each reason with its name on the wire and its kind.
const REASONS: [(Reason, &str, ErrorCode); 50] = {
    use ErrorCode as C;
    use Reason as R;
    [
        (R::InvalidArgument, "invalid_argument", C::InvalidArgument),
        (R::NotFound, "not_found", C::NotFound),
        (R::Conflict, "conflict", C::Conflict),
        (
            R::ResourceExhausted,
            "resource_exhausted",
            C::ResourceExhausted,
        ),
        (R::Unavailable, "unavailable", C::Unavailable),
        (R::Unauthenticated, "unauthenticated", C::Unauthenticated),
        (
            R::PermissionDenied,
            "permission_denied",
            C::PermissionDenied,
        ),
        (R::Internal, "internal", C::Internal),
        (R::BodyInvalid, "body_invalid", C::InvalidArgument),
        (R::BodyTooLarge, "body_too_large", C::InvalidArgument),
        (R::MagnetInvalid, "magnet_invalid", C::InvalidArgument),
        (R::TorrentInvalid, "torrent_invalid", C::InvalidArgument),
        (R::TorrentTooLarge, "torrent_too_large", C::InvalidArgument),
        (R::SourceRequired, "source_required", C::InvalidArgument),
        (R::TaskIdInvalid, "task_id_invalid", C::InvalidArgument),
        (R::TaskNotFound, "task_not_found", C::NotFound),
        (R::TooManyTasks, "too_many_tasks", C::ResourceExhausted),
        (R::NodeNotFound, "node_not_found", C::NotFound),
        (R::NoNodeOnline, "no_node_online", C::Unavailable),
        (R::NodeUnavailable, "node_unavailable", C::Unavailable),
        (R::NodeIsOriginal, "node_is_original", C::Conflict),
        (R::DiskFull, "disk_full", C::ResourceExhausted),
        (R::LoginRequired, "login_required", C::Unauthenticated),
        (R::SessionExpired, "session_expired", C::Unauthenticated),
        (R::LoginFailed, "login_failed", C::Unauthenticated),
        (R::RateLimited, "rate_limited", C::ResourceExhausted),
        (R::AccountBanned, "account_banned", C::PermissionDenied),
        (R::AdminsOnly, "admins_only", C::PermissionDenied),
        (R::NotOwner, "not_owner", C::PermissionDenied),
        (
            R::RegistrationClosed,
            "registration_closed",
            C::PermissionDenied,
        ),
        (R::AccountsDisabled, "accounts_disabled", C::NotFound),
        (R::UsernameInvalid, "username_invalid", C::InvalidArgument),
        (R::PasswordInvalid, "password_invalid", C::InvalidArgument),
        (R::UsernameTaken, "username_taken", C::Conflict),
        (R::UserNotFound, "user_not_found", C::NotFound),
        (R::CannotBanSelf, "cannot_ban_self", C::InvalidArgument),
        (R::TooManyStreams, "too_many_streams", C::ResourceExhausted),
        (R::CrossOrigin, "cross_origin", C::PermissionDenied),
        (
            R::SignalingUnavailable,
            "signaling_unavailable",
            C::Unavailable,
        ),
        (R::SessionUnknown, "session_unknown", C::NotFound),
        (R::SessionInUse, "session_in_use", C::Conflict),
        (
            R::RangeNotSatisfiable,
            "range_not_satisfiable",
            C::InvalidArgument,
        ),
        (R::FileNotFound, "file_not_found", C::NotFound),
        (R::FileRefused, "file_refused", C::PermissionDenied),
        (R::FileTooLarge, "file_too_large", C::ResourceExhausted),
        (R::SegmentNotReady, "segment_not_ready", C::Unavailable),
        (
            R::WorkerTokenRequired,
            "worker_token_required",
            C::Unauthenticated,
        ),
        (
            R::WorkerTokenWrong,
            "worker_token_wrong",
            C::Unauthenticated,
        ),
        (
            R::OriginalWorkersClosed,
            "original_workers_closed",
            C::PermissionDenied,
        ),
        (R::RouteNotFound, "route_not_found", C::NotFound),
    ]
};

impl Reason {
    /// Every reason, in the order of docs/api.md's table.
    pub fn all() -> impl Iterator<Item = Reason> {
        REASONS.iter().map(|(r, _, _)| *r)
    }

    fn row(self) -> &'static (Reason, &'static str, ErrorCode) {
        // Every variant has its row (a test checks); the general kind is the fallback.
        REASONS
            .iter()
            .find(|(r, _, _)| *r == self)
            .unwrap_or(&REASONS[7])
    }

    /// Its name on the wire: `magnet_invalid`.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The reason of this name, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        REASONS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(r, _, _)| *r)
    }

    /// Its kind, which decides the gRPC code.
    pub fn code(self) -> ErrorCode {
        self.row().2
    }

    /// The HTTP status the gateway answers with: the kind's, or a more precise one.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BodyTooLarge | Self::FileTooLarge => 413,
            Self::RangeNotSatisfiable => 416,
            Self::TooManyTasks | Self::RateLimited | Self::TooManyStreams => 429,
            _ => self.code().http_status(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// The general reason of this kind, for an error with no more precise one.
    pub fn reason(self) -> Reason {
        match self {
            Self::InvalidArgument => Reason::InvalidArgument,
            Self::NotFound => Reason::NotFound,
            Self::Conflict => Reason::Conflict,
            Self::ResourceExhausted => Reason::ResourceExhausted,
            Self::Unavailable => Reason::Unavailable,
            Self::Unauthenticated => Reason::Unauthenticated,
            Self::PermissionDenied => Reason::PermissionDenied,
            Self::Internal => Reason::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_one_row_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for (i, (r, name, _)) in REASONS.iter().enumerate() {
            assert!(names.insert(*name), "{name} twice");
            assert_eq!(
                REASONS.iter().position(|(x, _, _)| x == r),
                Some(i),
                "{r:?}"
            );
            assert_eq!(Reason::parse(name), Some(*r));
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        assert_eq!(Reason::parse("Magnet_Invalid"), None);
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
            assert_eq!(code.reason().code(), code);
            assert_eq!(code.reason().http_status(), code.http_status());
        }
    }

    /// docs/api.md lists exactly these codes, each with the status the gateway answers (the
    /// web UI's catalogs are checked against the same table by `npm test`).
    #[test]
    fn the_api_docs_list_every_reason_with_its_status() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md"),
        )
        .expect("docs/api.md");
        let section = doc
            .split("### Error codes")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("an Error codes section");
        let rows: Vec<(String, u16)> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| {
                let (name, rest) = l.split_once("` | ")?;
                let status = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), status))
            })
            .collect();
        let listed: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        let ours: Vec<&str> = Reason::all().map(Reason::as_str).collect();
        assert_eq!(listed, ours, "docs/api.md's codes, in order");
        for (name, status) in &rows {
            let r = Reason::parse(name).expect("parsed above");
            assert_eq!(*status, r.http_status(), "{name}");
        }
    }
}
