//! Password hashing (argon2id) on a small fixed pool of threads. Each hash takes ~19 MiB on
//! purpose; allocated afresh per hash on tokio's blocking threads, those buffers ended up
//! spread over many allocator arenas that kept them, and a burst of logins left the gateway
//! holding ~0.7 GB. Here two long-lived threads each allocate their argon2 memory once and
//! reuse it, and a bounded queue turns a flood into quick 503s instead of a growing backlog.

use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use magnet_core::ErrorCode;

use crate::error::{ApiError, ApiResult};

/// Threads that hash; at most this many hashes' memory is ever held.
const THREADS: usize = 2;
/// Hashes waiting for a thread; more at once are refused (503) rather than queued.
const QUEUE: usize = 64;

type Work = Box<dyn FnOnce() + Send>;

fn pool() -> &'static SyncSender<Work> {
    static POOL: OnceLock<SyncSender<Work>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = sync_channel::<Work>(QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let next = rx.lock().map(|r| r.recv());
                        match next {
                            Ok(Ok(work)) => work(),
                            _ => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        tx
    })
}

/// Runs `f` on the pool and waits for its answer without blocking the runtime.
async fn on_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let work: Work = Box::new(move || {
        let _ = tx.send(f());
    });
    match pool().try_send(work) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "too many logins at once; try again in a moment",
            ));
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "password hashing is not running",
            ));
        }
    }
    rx.await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "password hashing stopped"))
}

/// A PHC string (argon2id, default parameters, a random salt) for `password`.
pub async fn hash(password: String) -> ApiResult<String> {
    on_pool(move || hash_now(&password))
        .await?
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot hash password: {e}")))
}

/// Whether `password` matches the PHC string `stored`.
pub async fn verify(password: String, stored: String) -> ApiResult<bool> {
    on_pool(move || verify_now(&password, &stored)).await
}

/// Largest memory a stored hash may ask for (KiB): hashes are ours, but a bad record must
/// not make the gateway allocate without bound.
const MAX_M_COST: u32 = 256 * 1024;

thread_local! {
    /// The hashing thread's argon2 memory, allocated once and reused by every hash: a fresh
    /// 19 MiB per hash, freed into ever more allocator arenas, is what grew the gateway.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::default());
        }
        f(&mut m[..blocks])
    })
}

fn raw_hash(
    argon: &Argon2<'_>,
    params: &Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    with_memory(params.block_count(), |memory| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, out, memory)
    })
}

fn hash_now(password: &str) -> password_hash::Result<String> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    raw_hash(&argon, &params, password, salt_bytes, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

fn verify_now(password: &str, stored: &str) -> bool {
    let check = || -> Option<bool> {
        let phc = PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&phc).ok()?;
        if params.m_cost() > MAX_M_COST {
            return None;
        }
        let expected = phc.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = phc.salt?.decode_b64(&mut salt_buf).ok()?;
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        raw_hash(&argon, &params, password, salt, &mut out).ok()?;
        // `Output`'s equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_of_the_argon2_crate_still_verify() {
        use argon2::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default()
            .hash_password(b"secret1", &salt)
            .expect("hash")
            .to_string();
        assert!(verify("secret1".into(), old.clone()).await.expect("verify"));
        assert!(!verify("secret2".into(), old).await.expect("verify"));
    }

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("secret1".into()).await.expect("hash");
        let b = hash("secret1".into()).await.expect("hash");
        assert_ne!(a, b, "salted");
        assert!(verify("secret1".into(), a.clone()).await.expect("verify"));
        assert!(!verify("secret2".into(), a).await.expect("verify"));
        assert!(
            !verify("x".into(), "not a phc".into())
                .await
                .expect("verify")
        );
    }
}
