//! Binding a service's listeners: one place that names the address in the error.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::{Error, Result};

/// Binds `addr`; returns the listener and the bound address (port 0 resolved).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let bind_error = |source| Error::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}
