//! Who may connect: the [`Auth`] every server is built with, and the
//! throttle that slows down password guessing.
//!
//! There is no default. A server states its choice, as Versile's required
//! `auth` argument makes it do: [`Auth::anonymous`] lets anyone in,
//! [`Auth::password`] checks VSOA's `passwd` (in constant time),
//! [`Auth::custom`] takes any [`Authenticator`] (a bgpy-style token, a
//! client-certificate check, a lookup table).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a client presented in its SERVINFO request.
#[derive(Debug)]
#[non_exhaustive]
pub struct Hello<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// `passwd` from the request param, if any.
    pub password: Option<&'a str>,
    /// The whole request param (JSON `null` when it was empty), for
    /// authenticators that read other keys (a `token`, a user name).
    pub param: &'a serde_json::Value,
    /// Whether the connection is TLS with a verified client certificate.
    pub client_certificate: bool,
}

/// An authenticator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the client in. `authed` is VSOA's flag: only authed clients
    /// receive publishes. The service can change it later.
    Accept {
        /// Initial `authed` flag.
        authed: bool,
    },
    /// Refuse: the client gets SERVINFO status 1 (password) and is closed.
    Reject,
}

/// Decides whether a client may connect.
pub trait Authenticator: Send + Sync + 'static {
    /// Judges one handshake. Runs on the session's thread; keep it quick.
    fn authenticate(&self, hello: &Hello<'_>) -> Verdict;
}

impl<F> Authenticator for F
where
    F: Fn(&Hello<'_>) -> Verdict + Send + Sync + 'static,
{
    fn authenticate(&self, hello: &Hello<'_>) -> Verdict {
        self(hello)
    }
}

/// A server's explicit authentication choice.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<dyn Authenticator>,
    kind: &'static str,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Auth").field(&self.kind).finish()
    }
}

impl Auth {
    /// Anyone may connect, and every client is authed.
    pub fn anonymous() -> Self {
        Self {
            inner: Arc::new(|_: &Hello<'_>| Verdict::Accept { authed: true }),
            kind: "anonymous",
        }
    }

    /// Clients must send this password (VSOA `passwd`). The comparison takes
    /// the same time whatever the guess.
    pub fn password(password: impl AsRef<[u8]>) -> Self {
        let expected: [u8; 32] = Sha256::digest(password.as_ref()).into();
        Self {
            inner: Arc::new(move |hello: &Hello<'_>| {
                let given: [u8; 32] =
                    Sha256::digest(hello.password.unwrap_or("").as_bytes()).into();
                if bool::from(given.ct_eq(&expected)) {
                    Verdict::Accept { authed: true }
                } else {
                    Verdict::Reject
                }
            }),
            kind: "password",
        }
    }

    /// Any authenticator.
    pub fn custom(authenticator: impl Authenticator) -> Self {
        Self {
            inner: Arc::new(authenticator),
            kind: "custom",
        }
    }

    /// `"anonymous"`, `"password"` or `"custom"`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether a client must send SERVINFO before anything else (a
    /// password or a custom check); an anonymous server activates a client
    /// on its first packet of any type, as VSOA does.
    pub(crate) fn requires_hello(&self) -> bool {
        self.kind != "anonymous"
    }

    pub(crate) fn judge(&self, hello: &Hello<'_>) -> Verdict {
        self.inner.authenticate(hello)
    }
}

/// How failed handshakes from one IP address are slowed down.
///
/// The first `free_attempts` failures cost nothing; after that each new
/// attempt from that address waits `base * 2^(n - free_attempts)`, at most
/// `max`, before it is even judged. Failures are forgotten after `window`
/// without one, or at the first success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Failures allowed without delay.
    pub free_attempts: u32,
    /// Delay after the first counted failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Quiet time after which an address starts afresh.
    pub window: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            free_attempts: 3,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            window: Duration::from_secs(300),
        }
    }
}

/// Most addresses tracked at once; expired entries are dropped first.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// Failures, the last one, and when the next judgment may happen.
    by_ip: Mutex<HashMap<IpAddr, (u32, Instant, Instant)>>,
}

impl Failures {
    /// How long to wait before judging a handshake from `ip`: zero while
    /// it has free attempts left; after that, judgments from one IP are
    /// serialized, each at least the throttle delay after the previous
    /// one, so parallel connections do not multiply the guesses.
    pub(crate) fn reserve(&self, ip: IpAddr, policy: &Throttle) -> Duration {
        let mut map = self.by_ip.lock();
        let now = Instant::now();
        match map.get_mut(&ip) {
            Some(entry)
                if now.duration_since(entry.1) < policy.window
                    && entry.0 >= policy.free_attempts =>
            {
                let exp = (entry.0 - policy.free_attempts).min(20);
                let step = policy.base.saturating_mul(1 << exp).min(policy.max);
                let at = entry.2.max(now) + step;
                entry.2 = at;
                at - now
            }
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn failed(&self, ip: IpAddr, policy: &Throttle) {
        let mut map = self.by_ip.lock();
        let now = Instant::now();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (_, last, _)| now.duration_since(*last) < policy.window);
            if map.len() >= MAX_TRACKED {
                // Still full of live entries: forget the oldest.
                if let Some(oldest) = map.iter().min_by_key(|(_, (_, t, _))| *t).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(ip).or_insert((0, now, now));
        if now.duration_since(entry.1) >= policy.window {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }

    pub(crate) fn succeeded(&self, ip: IpAddr) {
        self.by_ip.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello<'a>(password: Option<&'a str>, param: &'a serde_json::Value) -> Hello<'a> {
        Hello {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            password,
            param,
            client_certificate: false,
        }
    }

    #[test]
    fn password_accepts_only_the_exact_password() {
        let auth = Auth::password("s3cret");
        let p = serde_json::Value::Null;
        assert_eq!(
            auth.judge(&hello(Some("s3cret"), &p)),
            Verdict::Accept { authed: true }
        );
        for wrong in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret "),
            Some("S3cret"),
        ] {
            assert_eq!(auth.judge(&hello(wrong, &p)), Verdict::Reject, "{wrong:?}");
        }
    }

    #[test]
    fn throttle_grows_after_the_free_attempts_and_resets_on_success() {
        let policy = Throttle::default();
        let f = Failures::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..policy.free_attempts {
            assert_eq!(f.reserve(ip, &policy), Duration::ZERO);
            f.failed(ip, &policy);
        }
        assert_eq!(f.reserve(ip, &policy), policy.base);
        f.failed(ip, &policy);
        for _ in 0..40 {
            f.failed(ip, &policy);
        }
        let wait = f.reserve(ip, &policy);
        assert!(
            wait > policy.max && wait <= policy.base + policy.max,
            "{wait:?}"
        );
        f.succeeded(ip);
        assert_eq!(f.reserve(ip, &policy), Duration::ZERO);
    }

    #[test]
    fn parallel_attempts_from_one_ip_are_judged_one_after_another() {
        let policy = Throttle::default();
        let f = Failures::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..policy.free_attempts {
            f.failed(ip, &policy);
        }
        let waits: Vec<Duration> = (0..4).map(|_| f.reserve(ip, &policy)).collect();
        for (i, wait) in waits.iter().enumerate() {
            let slot = policy.base * (i as u32 + 1);
            // Taken within a moment of each other: each waits one more step.
            assert!(*wait <= slot && *wait + policy.base / 2 > slot, "{waits:?}");
        }
        let other = IpAddr::from([127, 0, 0, 2]);
        assert_eq!(f.reserve(other, &policy), Duration::ZERO);
    }
}
