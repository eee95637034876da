//! Accounts, as the original has them: `POST /api/auth/register|login|logout`,
//! `GET /api/auth/me`, `GET /api/admin/users`, `PATCH /api/admin/users/:id/ban`.
//!
//! Users and sessions live in NATS KV buckets (`subjects::USERS_BUCKET`,
//! `subjects::SESSIONS_BUCKET`), so gateway replicas share them and stay stateless. Passwords
//! are hashed with argon2id; a session is a random 256-bit token, given to browsers as an
//! HttpOnly, SameSite=Lax cookie (Secure behind TLS) and to API clients as a bearer token;
//! only its SHA-256 is stored. The first admin comes from configuration. When accounts are
//! off, every request acts as a local admin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use magnet_core::{ErrorCode, Reason};
use magnet_runtime::config::AuthSettings;
use magnet_runtime::subjects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, ApiResult, JsonBody, json_body};
use crate::passwords::{hash, verify};

/// Name of the session cookie.
pub const COOKIE: &str = "magnet_session";

/// A user's role, `"admin"` or `"user"` in JSON: admins manage users and may act on anyone's
/// task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

/// A user as stored; [`User::public`] is what the API shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub is_banned: bool,
    pub created_at: String,
    /// argon2id PHC string; empty for the pseudo user of a gateway without accounts.
    #[serde(default)]
    pub password_hash: String,
}

impl User {
    /// The original's User: `{id, username, role, is_banned, created_at}`.
    pub fn public(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "is_banned": self.is_banned,
            "created_at": self.created_at,
        })
    }

    /// A caller without a session on a public read (`gateway.auth.public_reads`): no
    /// username is empty, so a stranger owns nothing.
    pub fn anonymous() -> Self {
        Self {
            id: String::new(),
            username: String::new(),
            role: Role::User,
            is_banned: false,
            created_at: String::new(),
            password_hash: String::new(),
        }
    }

    /// Whether this is the stranger of [`User::anonymous`] (a public read without a session).
    pub fn is_anonymous(&self) -> bool {
        self.id.is_empty()
    }

    /// The pseudo user of a gateway without accounts (everyone is it).
    pub fn is_local(&self) -> bool {
        self.id == "local" && self.password_hash.is_empty()
    }

    fn local() -> Self {
        Self {
            id: "local".into(),
            username: "local".into(),
            role: Role::Admin,
            is_banned: false,
            created_at: now(),
            password_hash: String::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SessionRecord {
    user_id: String,
    created_at: String,
}

/// The account store; `None` inside [`AppState`] when accounts are off.
#[derive(Clone)]
pub struct Accounts {
    users: kv::Store,
    sessions: kv::Store,
    settings: Arc<AuthSettings>,
}

/// RFC 3339 with milliseconds, so users list in the order they registered.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A user's KV key: `n.` and the hex of the id's UTF-8, so any name (Unicode, spaces,
/// dots) makes a valid key. (Before, the key was `u.<id>`, which only ASCII names fit;
/// [`Accounts::open`] moves such records.)
fn user_key(id: &str) -> String {
    format!("n.{}", data_encoding::HEXLOWER.encode(id.as_bytes()))
}

/// The id back from a key; `None` for anything [`user_key`] did not make.
fn user_id(key: &str) -> Option<String> {
    let hex = key.strip_prefix("n.")?;
    let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).ok()?;
    String::from_utf8(bytes).ok()
}

fn session_key(token: &str) -> String {
    format!(
        "s.{}",
        data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
    )
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("account store unavailable: {e}"),
    )
}

/// Longest username, in characters.
const MAX_USERNAME: usize = 64;

/// Usernames as the original takes them: any 3 or more characters (Unicode and spaces too),
/// trimmed, at most [`MAX_USERNAME`], no control characters. Returns the trimmed name and
/// its id, the lowercase form (names compare case-insensitively).
fn check_username(name: &str) -> ApiResult<(String, String)> {
    let name = name.trim();
    let len = name.chars().count();
    if !(3..=MAX_USERNAME).contains(&len) || name.chars().any(|c| c.is_control() || invisible(c)) {
        return Err(ApiError::because(
            Reason::UsernameInvalid,
            format!(
                "username must be 3 to {MAX_USERNAME} characters, with no control or invisible characters"
            ),
        ));
    }
    let id = name.to_lowercase();
    if RESERVED.contains(&id.as_str()) {
        return Err(ApiError::because(
            Reason::UsernameTaken,
            "username already taken",
        ));
    }
    Ok((name.to_owned(), id))
}

/// Ids of the pseudo users (the API token's, and everyone's without accounts): no account
/// may take them, or it would own what they submitted.
const RESERVED: [&str; 2] = ["api", "local"];

/// Characters that show as nothing or reorder text (zero-width, bidi controls, soft hyphen,
/// BOM), with which a name could pass for another in the admin table.
fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}')
}

fn check_password(password: &str) -> ApiResult<()> {
    if password.len() < 6 || password.len() > 256 {
        return Err(ApiError::because(
            Reason::PasswordInvalid,
            "password must be 6 to 256 characters",
        ));
    }
    Ok(())
}

impl Accounts {
    /// Opens the buckets and makes sure the configured first admin exists with its password.
    /// `replicas`: JetStream's copies of the buckets (`nats.replicas`).
    pub async fn open(
        js: &async_nats::jetstream::Context,
        settings: AuthSettings,
        replicas: usize,
    ) -> crate::Result<Self> {
        let users =
            magnet_runtime::nats::kv_bucket(js, subjects::USERS_BUCKET, Duration::ZERO, replicas)
                .await?;
        let lifetime = Duration::from_secs(settings.session_hours * 3600);
        let sessions =
            magnet_runtime::nats::kv_bucket(js, subjects::SESSIONS_BUCKET, lifetime, replicas)
                .await?;
        let accounts = Self {
            users,
            sessions,
            settings: Arc::new(settings),
        };
        accounts.move_legacy_keys().await?;
        let password = match (
            &accounts.settings.admin_password,
            &accounts.settings.admin_password_file,
        ) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(file)) => Some(
                tokio::fs::read_to_string(file)
                    .await?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (None, None) => None,
        };
        match password {
            Some(p) => {
                let name = accounts.settings.admin_username.clone();
                accounts
                    .ensure_admin(&name, &p)
                    .await
                    .map_err(|e| crate::Error::Io(std::io::Error::other(e.message)))?;
            }
            None => tracing::warn!(
                "accounts are on but no admin password is configured (gateway.auth.admin_password): nobody can administer users"
            ),
        }
        Ok(accounts)
    }

    async fn ensure_admin(&self, name: &str, password: &str) -> ApiResult<()> {
        let (name, id) = check_username(name)?;
        let name = name.as_str();
        if let Some(mut u) = self.user(&id).await? {
            if u.role == Role::Admin && verify(password.into(), u.password_hash.clone()).await? {
                return Ok(());
            }
            u.role = Role::Admin;
            u.is_banned = false;
            u.password_hash = hash(password.into()).await?;
            self.put(&u).await?;
            tracing::info!(user = %name, "admin account updated from configuration");
            return Ok(());
        }
        let user = User {
            id: id.clone(),
            username: name.into(),
            role: Role::Admin,
            is_banned: false,
            created_at: now(),
            password_hash: hash(password.into()).await?,
        };
        match self
            .users
            .create(
                user_key(&id),
                serde_json::to_vec(&user).unwrap_or_default().into(),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(user = %name, "admin account created from configuration");
                Ok(())
            }
            // Another gateway replica created it at the same moment: check it as above.
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                Box::pin(self.ensure_admin(name, password)).await
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// Moves records stored under the first release's keys (`u.<id>`) to [`user_key`]s.
    /// Idempotent, and safe with several replicas starting at once.
    async fn move_legacy_keys(&self) -> crate::Result<()> {
        use futures::StreamExt;
        let io = |e: &dyn std::fmt::Display| crate::Error::Io(std::io::Error::other(e.to_string()));
        let mut keys = self.users.keys().await.map_err(|e| io(&e))?;
        let mut legacy = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| io(&e))?;
            if key.starts_with("u.") {
                legacy.push(key);
            }
        }
        for key in legacy {
            let Some(bytes) = self.users.get(&key).await.map_err(|e| io(&e))? else {
                continue;
            };
            let Ok(user) = serde_json::from_slice::<User>(&bytes) else {
                tracing::warn!(%key, "unreadable user record left in place");
                continue;
            };
            match self.users.create(user_key(&user.id), bytes).await {
                Ok(_) => {}
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&e)),
            }
            self.users.delete(&key).await.map_err(|e| io(&e))?;
            tracing::info!(user = %user.username, "user record moved to its new key");
        }
        Ok(())
    }

    /// A new account; a taken name is refused before the (slow, memory-hungry) hashing.
    async fn create(&self, c: Credentials, role: Role) -> ApiResult<User> {
        let (name, id) = check_username(&c.username)?;
        check_password(&c.password)?;
        let taken = || ApiError::because(Reason::UsernameTaken, "username already taken");
        if self.user(&id).await?.is_some() {
            return Err(taken());
        }
        let user = User {
            id: id.clone(),
            username: name,
            role,
            is_banned: false,
            created_at: now(),
            password_hash: hash(c.password).await?,
        };
        let bytes = serde_json::to_vec(&user)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        match self.users.create(user_key(&id), bytes.into()).await {
            Ok(_) => Ok(user),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(taken()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn user(&self, id: &str) -> ApiResult<Option<User>> {
        let Some(bytes) = self.users.get(user_key(id)).await.map_err(store_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("bad user record {id}: {e}")))
    }

    async fn put(&self, user: &User) -> ApiResult<()> {
        let bytes = serde_json::to_vec(user)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        self.users
            .put(user_key(&user.id), bytes.into())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The user behind a session token, if the session is alive.
    async fn session_user(&self, token: &str) -> ApiResult<Option<User>> {
        if let Some(api) = &self.settings.api_token
            && bool::from(api.as_bytes().ct_eq(token.as_bytes()))
        {
            return Ok(Some(User {
                id: "api".into(),
                username: "api".into(),
                role: Role::Admin,
                is_banned: false,
                created_at: String::new(),
                password_hash: String::new(),
            }));
        }
        let Some(bytes) = self
            .sessions
            .get(session_key(token))
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<SessionRecord>(&bytes) else {
            return Ok(None);
        };
        self.user(&record.user_id).await
    }

    async fn new_session(&self, user: &User) -> ApiResult<String> {
        let token = data_encoding::BASE64URL_NOPAD.encode(&rand::random::<[u8; 32]>());
        let record = SessionRecord {
            user_id: user.id.clone(),
            created_at: now(),
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        self.sessions
            .put(session_key(&token), bytes.into())
            .await
            .map_err(store_error)?;
        Ok(token)
    }
}

/// The session token of a request: the cookie, else `Authorization: Bearer …`.
fn token(jar: &CookieJar, headers: &HeaderMap) -> Option<String> {
    jar.get(COOKIE)
        .map(|c| c.value().to_owned())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("Bearer ")
                .map(|t| t.trim().to_owned())
        })
        .filter(|t| !t.is_empty())
}

/// The caller, or 401 when accounts are on and there is no live session.
async fn caller(s: &AppState, headers: &HeaderMap) -> ApiResult<User> {
    let Some(accounts) = &s.accounts else {
        return Ok(User::local());
    };
    let jar = CookieJar::from_headers(headers);
    let Some(token) = token(&jar, headers) else {
        return Err(ApiError::because(Reason::LoginRequired, "login required"));
    };
    accounts.session_user(&token).await?.ok_or_else(|| {
        ApiError::because(
            Reason::SessionExpired,
            "session expired or unknown; log in again",
        )
    })
}

/// Middleware for everything but the login routes and the static UI: the caller must be
/// logged in (when accounts are on) and not banned (a ban ends everything a session could
/// do: reading, playing, signaling); handlers find the [`User`] in the request's extensions.
pub async fn require_user(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    match caller(&s, req.headers())
        .await
        .and_then(|u| may_change(&u).map(|()| u))
    {
        Ok(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Middleware for the original's public reads (`/api/status`, `/api/nodes`, `/api/tasks`):
/// with `gateway.auth.public_reads` a caller without a live session, or a banned one, reads
/// as a stranger ([`User::anonymous`]); without it, as [`require_user`].
pub async fn reader(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if !s.public_reads {
        return require_user(State(s), req, next).await;
    }
    let user = match caller(&s, req.headers()).await {
        Ok(u) if !u.is_banned => u,
        _ => User::anonymous(),
    };
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// Submitting and deleting need a user who is not banned.
pub fn may_change(user: &User) -> ApiResult<()> {
    if user.is_banned {
        return Err(ApiError::because(
            Reason::AccountBanned,
            "your account is banned",
        ));
    }
    Ok(())
}

fn require_admin(user: &User) -> ApiResult<()> {
    may_change(user)?;
    if user.role != Role::Admin {
        return Err(ApiError::because(Reason::AdminsOnly, "admins only"));
    }
    Ok(())
}

fn accounts(s: &AppState) -> ApiResult<&Accounts> {
    s.accounts.as_ref().ok_or_else(|| {
        ApiError::because(
            Reason::AccountsDisabled,
            "accounts are disabled on this gateway",
        )
    })
}

/// The body of `POST /api/auth/register` and `/login` (and, flattened, of an admin's
/// `POST /api/admin/users`).
#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// A cookie for `token`, Secure when configured or when the request came over TLS.
fn session_cookie(
    s: &AppState,
    headers: &HeaderMap,
    token: String,
    max_age: Duration,
) -> Cookie<'static> {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = tls
        || s.accounts
            .as_ref()
            .is_some_and(|a| a.settings.secure_cookies);
    Cookie::build((COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(max_age.try_into().unwrap_or_default())
        .build()
}

/// `POST /api/auth/register {username, password}` → 201 `{success, data: User}`.
pub async fn register(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    b: JsonBody<Credentials>,
) -> ApiResult<Response> {
    let a = accounts(&s)?;
    s.logins.attempt(peer.ip(), None)?;
    if !a.settings.allow_register {
        return Err(ApiError::because(
            Reason::RegistrationClosed,
            "registration is closed on this gateway; ask an admin for an account",
        ));
    }
    let c = json_body(b)?;
    let user = a.create(c, Role::User).await?;
    tracing::info!(user = %user.username, "registered");
    Ok(created(&user))
}

fn created(user: &User) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({ "success": true, "data": user.public() })),
    )
        .into_response()
}

/// The body of `POST /api/admin/users`: the new user's credentials, and whether they are an
/// admin.
#[derive(Deserialize)]
pub struct NewUser {
    #[serde(flatten)]
    credentials: Credentials,
    #[serde(default)]
    admin: bool,
}

/// `POST /api/admin/users {username, password, admin?}` → 201 `{success, data: User}`,
/// admins only: how users get accounts when registration is closed.
pub async fn add_user(
    State(s): State<AppState>,
    axum::Extension(me): axum::Extension<User>,
    b: JsonBody<NewUser>,
) -> ApiResult<Response> {
    require_admin(&me)?;
    let a = accounts(&s)?;
    let n = json_body(b)?;
    let role = if n.admin { Role::Admin } else { Role::User };
    let user = a.create(n.credentials, role).await?;
    tracing::info!(user = %user.username, by = %me.username, "user added");
    Ok(created(&user))
}

/// `POST /api/auth/login {username, password}` → `{success, data: User, token}` and the
/// session cookie.
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    b: JsonBody<Credentials>,
) -> ApiResult<(CookieJar, Json<Value>)> {
    let a = accounts(&s)?;
    let c = json_body(b)?;
    let wrong = || ApiError::because(Reason::LoginFailed, "wrong username or password");
    let (_, id) = check_username(&c.username).map_err(|_| wrong())?;
    s.logins.attempt(peer.ip(), Some(&id))?;
    let Some(user) = a.user(&id).await? else {
        // Same work as a real check, so timing does not tell which usernames exist.
        let _ = hash(c.password).await;
        return Err(wrong());
    };
    if !verify(c.password, user.password_hash.clone()).await? {
        return Err(wrong());
    }
    let token = a.new_session(&user).await?;
    let lifetime = Duration::from_secs(a.settings.session_hours * 3600);
    tracing::info!(user = %user.username, "logged in");
    Ok((
        jar.add(session_cookie(&s, &headers, token.clone(), lifetime)),
        Json(json!({ "success": true, "data": user.public(), "token": token })),
    ))
}

/// `POST /api/auth/logout`: ends the session (cookie or bearer) and clears the cookie.
pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> ApiResult<(CookieJar, Json<Value>)> {
    if let (Some(a), Some(token)) = (&s.accounts, token(&jar, &headers)) {
        a.sessions
            .delete(session_key(&token))
            .await
            .map_err(store_error)?;
    }
    let gone = session_cookie(&s, &headers, String::new(), Duration::ZERO);
    Ok((
        jar.remove(gone),
        Json(json!({ "success": true, "message": "Logged out" })),
    ))
}

/// `GET /api/auth/me` → `{success, data: User, auth_enabled}` or 401.
pub async fn me(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let user = caller(&s, &headers).await?;
    Ok(Json(json!({
        "success": true,
        "data": user.public(),
        "auth_enabled": s.accounts.is_some(),
    })))
}

/// `GET /api/admin/users` → `{success, data: [User]}`, admins only.
pub async fn users(
    State(s): State<AppState>,
    axum::Extension(me): axum::Extension<User>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    let a = accounts(&s)?;
    let mut keys = a.users.keys().await.map_err(store_error)?;
    let mut all = Vec::new();
    use futures::StreamExt;
    while let Some(key) = keys.next().await {
        let key = key.map_err(store_error)?;
        if let Some(id) = user_id(&key)
            && let Some(u) = a.user(&id).await?
        {
            all.push(u);
        }
    }
    all.sort_by(|x, y| x.created_at.cmp(&y.created_at).then(x.id.cmp(&y.id)));
    Ok(Json(json!({
        "success": true,
        "data": all.iter().map(User::public).collect::<Vec<_>>(),
    })))
}

/// The body of `PATCH /api/admin/users/:id/ban`: `true` bans the user, `false` lifts the ban.
#[derive(Deserialize)]
pub struct Ban {
    banned: bool,
}

/// `PATCH /api/admin/users/:id/ban {banned}` → `{success, data: User}`, admins only; an
/// admin cannot ban themselves.
pub async fn ban(
    State(s): State<AppState>,
    axum::Extension(me): axum::Extension<User>,
    Path(id): Path<String>,
    b: JsonBody<Ban>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    let a = accounts(&s)?;
    let Ban { banned } = json_body(b)?;
    let not_found = || ApiError::because(Reason::UserNotFound, "User not found");
    let (_, id) = check_username(&id).map_err(|_| not_found())?;
    if id == me.id && banned {
        return Err(ApiError::because(
            Reason::CannotBanSelf,
            "you cannot ban yourself",
        ));
    }
    // Compare-and-set, so two admins' changes do not overwrite other fields.
    loop {
        let entry = a
            .users
            .entry(user_key(&id))
            .await
            .map_err(store_error)?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or_else(not_found)?;
        let mut user: User = serde_json::from_slice(&entry.value)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        user.is_banned = banned;
        let bytes = serde_json::to_vec(&user)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        match a
            .users
            .update(user_key(&id), bytes.into(), entry.revision)
            .await
        {
            Ok(_) => {
                tracing::info!(user = %user.username, banned, by = %me.username, "ban changed");
                return Ok(Json(json!({ "success": true, "data": user.public() })));
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        let id = |n: &str| check_username(n).ok().map(|(_, id)| id);
        assert_eq!(id("Alice_1").as_deref(), Some("alice_1"));
        assert_eq!(id("  Zoë Ünal ").as_deref(), Some("zoë ünal"));
        assert_eq!(id("张小明").as_deref(), Some("张小明"));
        assert_eq!(id("...").as_deref(), Some("..."));
        assert!(id("ab").is_none());
        assert!(id("  ab  ").is_none());
        assert!(id("a\u{0}bc").is_none());
        assert!(id(&"x".repeat(65)).is_none());
        assert!(id("ad\u{200B}min").is_none(), "zero-width");
        assert!(id("\u{202E}nimda").is_none(), "bidi");
        assert!(id("API").is_none() && id("local").is_none(), "reserved");
    }

    #[test]
    fn user_keys_are_valid_for_any_name() {
        for id in ["...", "a..b", "zoë ünal", "张小明", "a/b*>"] {
            let key = user_key(id);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
                "{key}"
            );
            assert_eq!(user_id(&key).as_deref(), Some(id));
        }
    }

    #[test]
    fn session_keys_hide_the_token() {
        let k = session_key("secret-token");
        assert!(k.starts_with("s.") && k.len() == 66 && !k.contains("secret"));
    }

    #[test]
    fn bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(
            token(&CookieJar::from_headers(&h), &h).as_deref(),
            Some("abc")
        );
        h.insert(
            header::COOKIE,
            format!("{COOKIE}=xyz").parse().expect("header"),
        );
        assert_eq!(
            token(&CookieJar::from_headers(&h), &h).as_deref(),
            Some("xyz")
        );
    }
}
