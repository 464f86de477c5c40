//! The outbound HTTP client: one pooled, keep-alive client for every endpoint, no
//! redirects, and a resolver that refuses private addresses unless allowed, so the
//! address checked is the address connected to (DNS pinning).
//!
//! Proxies: the environment's `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored
//! (a proxy resolves the destination itself, where these checks never see it). An
//! outbound proxy is only ever the explicit `delivery.proxy_url`; with it, the
//! resolver checks only the proxy's own name and the proxy enforces destinations.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::destination::is_forbidden_ip;

/// Resolves with the system resolver and drops forbidden addresses.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to private, loopback or link-local addresses \
                     (delivery.allow_private_destinations is off)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Installs rustls' `ring` crypto provider for this process (reqwest is built without
/// a default provider to keep the C-heavy aws-lc out of the build). Call before
/// building any `reqwest::Client`; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the shared delivery client; `proxy` is `delivery.proxy_url` (empty: none).
pub fn build(
    allow_private: bool,
    max_idle_per_host: usize,
    proxy: &str,
) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    let builder = match proxy {
        "" => reqwest::Client::builder().no_proxy(),
        url => reqwest::Client::builder().proxy(reqwest::Proxy::all(url)?),
    };
    builder
        .user_agent(concat!("GatePulse/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(max_idle_per_host)
        .tcp_nodelay(true)
        .build()
}
