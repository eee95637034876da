//! rustls's process-wide crypto provider. Our dependency graph turns on both of rustls's
//! providers (ring through kube and async-nats, aws-lc-rs through librqbit), and then rustls
//! cannot pick one by itself: a client built without an explicit provider (kube's) panics
//! with "Could not automatically determine the process-level CryptoProvider". Services call
//! [`install_crypto`] before making such a client.

/// Makes ring the process's rustls provider, unless one is set already. Safe to call more
/// than once.
pub fn install_crypto() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have won the race; either way a provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_is_set_after_install_crypto_and_twice_is_harmless() {
        super::install_crypto();
        super::install_crypto();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
