//! One SMTP session with one host ([`Connection`]): opening it (greeting,
//! EHLO or HELO, STARTTLS as the policy says), address probes, and what is
//! known about it (TLS, extensions, whether it may be reused). Sending a
//! message is in [`super::transaction`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::error::{ConnError, Stage};
use super::framing::valid_path;
use super::reply::{Extensions, RemoteReply};
use super::transport::{self, SourceHook, Timeouts, Wire};
use crate::delivery::dane::TlsaSet;
use crate::delivery::outcome::Class;
use crate::values::TlsPolicy;

/// The host to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The name used for TLS (SNI and certificate check): the MX name, or the IP as text.
    pub host: String,
    /// The address to connect to.
    pub addr: SocketAddr,
}

impl From<&crate::delivery::route::Target> for Target {
    fn from(t: &crate::delivery::route::Target) -> Target {
        Target {
            host: t.host.clone(),
            addr: t.addr,
        }
    }
}

/// How the client behaves; one value serves every connection.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The EHLO/HELO name (`server.hostname`).
    pub helo: String,
    /// The STARTTLS policy.
    pub tls: TlsPolicy,
    /// Timeouts per phase.
    pub timeouts: Timeouts,
    /// Trust anchors added to the system's (tests use a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Told our address of every TCP connection made, before the greeting
    /// (a greeting may already be a blocklist refusal naming it).
    pub on_connect: Option<SourceHook>,
}

impl ClientSettings {
    /// Defaults: policy `May`, RFC timeouts, system roots only.
    pub fn new(helo: impl Into<String>) -> ClientSettings {
        ClientSettings {
            helo: helo.into(),
            tls: TlsPolicy::May,
            timeouts: Timeouts::default(),
            extra_roots: Vec::new(),
            on_connect: None,
        }
    }
}

/// One SMTP session with one host, reusable for several messages.
pub struct Connection {
    pub(super) wire: Wire,
    pub(super) ext: Extensions,
    pub(super) remote: String,
    /// The host name it was opened for (MX name, next hop, or address text).
    pub(super) host: String,
    /// The address it is connected to.
    pub(super) addr: SocketAddr,
    pub(super) tls: Option<String>,
    pub(super) verified: bool,
    /// The certificate matched the MX host's TLSA records (DANE).
    pub(super) dane: bool,
    /// Why the certificate did not verify (opportunistic TLS), for TLS reports.
    pub(super) cert_problem: Option<String>,
    pub(super) timeouts: Timeouts,
    /// A transaction was left open (RCPTs all refused, DATA refused, a probe): RSET before
    /// the next. One that ended with the reply to its final dot, or whose MAIL was refused,
    /// left the remote reset already (RFC 5321 4.1.1.4), so the next MAIL goes straight out:
    /// one round trip less per message on a reused connection.
    pub(super) used: bool,
    /// Broken or closed by the remote (an error, a 421): not to be reused.
    pub(super) closing: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .field("tls", &self.tls)
            .field("verified", &self.verified)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects, reads the greeting, says EHLO (HELO if refused) and
    /// upgrades with STARTTLS as the policy says. Under `May`, a failed
    /// handshake is followed by a new connection without STARTTLS.
    pub async fn open(target: &Target, s: &ClientSettings) -> Result<Connection, ConnError> {
        Self::open_as(target, s, s.tls).await
    }

    /// [`Connection::open`] under `policy` instead of the settings' own (a
    /// destination's entry in `[delivery.tls_policy]`).
    pub async fn open_as(
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
    ) -> Result<Connection, ConnError> {
        match Self::open_with(target, s, policy, None).await {
            Err(e @ ConnError::Tls { .. })
                if matches!(policy, TlsPolicy::May | TlsPolicy::Dane) =>
            {
                tracing::warn!(
                    remote = %target.addr, host = %target.host, error = %e,
                    "STARTTLS failed; delivering in plaintext (opportunistic TLS, RFC 7435)"
                );
                Self::open_with(target, s, TlsPolicy::None, None).await
            }
            other => other,
        }
    }

    /// [`Connection::open`] for an MX host with usable TLSA records (DANE,
    /// RFC 7672): STARTTLS is required and the certificate must match
    /// `tlsa`; there is no fallback to plaintext.
    pub async fn open_dane(
        target: &Target,
        s: &ClientSettings,
        tlsa: Arc<TlsaSet>,
    ) -> Result<Connection, ConnError> {
        Self::open_with(target, s, TlsPolicy::Encrypt, Some(&tlsa)).await
    }

    async fn open_with(
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
        dane: Option<&Arc<TlsaSet>>,
    ) -> Result<Connection, ConnError> {
        if s.helo.is_empty() || !s.helo.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnError::Setup(format!("bad HELO name {:?}", s.helo)));
        }
        let t = s.timeouts;
        let tcp = transport::connect(target.addr, t.connect, s.on_connect.as_ref()).await?;
        let mut c = Connection {
            wire: Wire::new(tcp),
            ext: Extensions::default(),
            remote: format!("{} [{}]", target.host, target.addr.ip()),
            host: target.host.clone(),
            addr: target.addr,
            tls: None,
            verified: false,
            dane: false,
            cert_problem: None,
            timeouts: t,
            used: false,
            closing: false,
        };
        let greeting = c.wire.reply(t.greeting, Stage::Greeting).await?;
        if greeting.class() != Class::Success {
            c.quit_quietly().await;
            return Err(ConnError::Refused {
                stage: Stage::Greeting,
                reply: greeting,
            });
        }
        c.hello(&s.helo).await?;
        c.starttls(target, s, policy, dane).await?;
        Ok(c)
    }

    /// EHLO, or HELO when EHLO gets a 5xx; records the extensions.
    pub(super) async fn hello(&mut self, name: &str) -> Result<(), ConnError> {
        let t = self.timeouts.command;
        let reply = self
            .wire
            .command(&format!("EHLO {name}\r\n"), t, Stage::Ehlo)
            .await?;
        if reply.class() == Class::Success {
            self.ext = Extensions::from_ehlo(&reply);
            return Ok(());
        }
        if reply.code < 500 {
            self.quit_quietly().await;
            return Err(ConnError::Refused {
                stage: Stage::Ehlo,
                reply,
            });
        }
        let reply = self
            .wire
            .command(&format!("HELO {name}\r\n"), t, Stage::Helo)
            .await?;
        if reply.class() != Class::Success {
            self.quit_quietly().await;
            return Err(ConnError::Refused {
                stage: Stage::Helo,
                reply,
            });
        }
        self.ext = Extensions::default();
        Ok(())
    }

    /// Address verification (like Postfix's `reject_unverified_recipient`):
    /// `MAIL FROM:<>` and `RCPT TO:<rcpt>`, nothing more; the transaction is
    /// left open for RSET or QUIT. Returns the reply to RCPT; a refused MAIL
    /// is an `Err` (it says nothing of the recipient).
    pub async fn probe(&mut self, rcpt: &str) -> Result<RemoteReply, ConnError> {
        if rcpt.is_empty() || !valid_path(rcpt) || (!rcpt.is_ascii() && !self.ext.smtputf8) {
            return Err(ConnError::Setup(format!("cannot probe {rcpt:?}")));
        }
        let r = self.probe_inner(rcpt).await;
        if r.is_err() {
            self.closing = true;
        }
        r
    }

    /// Starts a transaction: RSET first if the connection carried one.
    pub(super) async fn begin(&mut self, t: Timeouts) -> Result<(), ConnError> {
        if self.used {
            let reply = self
                .wire
                .command("RSET\r\n", t.command, Stage::Rset)
                .await?;
            if reply.code != 250 {
                return Err(ConnError::Refused {
                    stage: Stage::Rset,
                    reply,
                });
            }
        }
        self.used = true;
        Ok(())
    }

    async fn probe_inner(&mut self, rcpt: &str) -> Result<RemoteReply, ConnError> {
        let t = self.timeouts;
        self.begin(t).await?;
        let mail = if rcpt.is_ascii() {
            "MAIL FROM:<>\r\n"
        } else {
            "MAIL FROM:<> SMTPUTF8\r\n"
        };
        let reply = self.wire.command(mail, t.command, Stage::Mail).await?;
        if reply.class() != Class::Success {
            // Says nothing of the recipient (the null sender refused, say).
            return Err(ConnError::Refused {
                stage: Stage::Mail,
                reply,
            });
        }
        self.wire
            .command(&format!("RCPT TO:<{rcpt}>\r\n"), t.command, Stage::Rcpt)
            .await
    }

    /// The TLS protocol and cipher, e.g. `"TLSv1.3 TLS13_AES_256_GCM_SHA384"`,
    /// when the session is encrypted.
    pub fn tls(&self) -> Option<&str> {
        self.tls.as_deref()
    }

    /// Whether the certificate verified for the host name (false in plaintext).
    pub fn tls_verified(&self) -> bool {
        self.tls.is_some() && self.verified
    }

    /// Whether the certificate matched the host's TLSA records (DANE).
    pub fn tls_dane(&self) -> bool {
        self.tls.is_some() && self.dane
    }

    /// Why the certificate did not verify, when TLS went on without it.
    pub fn tls_problem(&self) -> Option<&str> {
        self.cert_problem.as_deref()
    }

    /// The host name the connection was opened for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `"mx.example.org [192.0.2.1]"`, for logs and DSNs (Remote-MTA).
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// The address the connection goes to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The extensions from the last EHLO.
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// False once the connection broke or the remote announced it is closing.
    pub fn is_usable(&self) -> bool {
        !self.closing
    }

    /// QUIT and close; errors do not matter any more.
    pub async fn quit(mut self) {
        self.quit_quietly().await;
    }

    pub(super) async fn quit_quietly(&mut self) {
        if !self.closing {
            self.closing = true;
            let limit = self.timeouts.command.min(Duration::from_secs(10));
            if self
                .wire
                .write(b"QUIT\r\n", limit, Stage::Quit)
                .await
                .is_ok()
            {
                let _ = self.wire.reply(limit, Stage::Quit).await;
            }
        }
        self.wire.shutdown().await;
    }
}
