//! A webrtc-rs runtime that is tokio's, except that every UDP socket it wraps first gets
//! larger kernel buffers. With the default (~208 KiB) receive buffer, a fast sender over
//! loopback overflows the socket, packets drop, SCTP backs off, and throughput swings from run
//! to run; bigger buffers (up to `net.core.rmem_max`) keep bursts in the kernel.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Kernel buffer size asked for each WebRTC UDP socket (the kernel caps it at rmem_max/wmem_max).
pub const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

/// Tokio's webrtc-rs runtime, but asking `bytes` of kernel buffer for each UDP socket it
/// wraps; made by [`buffered`].
pub struct BufferedRuntime {
    inner: TokioRuntime,
    bytes: usize,
}

impl fmt::Debug for BufferedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedRuntime")
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The runtime to build peer connections with.
pub fn buffered(bytes: usize) -> Arc<dyn Runtime> {
    Arc::new(BufferedRuntime {
        inner: TokioRuntime,
        bytes,
    })
}

impl Runtime for BufferedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        pool: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(pool, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        use nix::sys::socket::{setsockopt, sockopt};
        if let Err(e) = setsockopt(&socket, sockopt::RcvBuf, &self.bytes) {
            tracing::debug!(error = %e, "UDP receive buffer not enlarged");
        }
        if let Err(e) = setsockopt(&socket, sockopt::SndBuf, &self.bytes) {
            tracing::debug!(error = %e, "UDP send buffer not enlarged");
        }
        self.inner.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> std::time::Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }
}
