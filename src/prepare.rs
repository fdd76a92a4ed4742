//! The step between acceptance and the queue, for every message the
//! gateway queues, whoever made it: a client over SMTP, a bounce, a delay
//! warning, a notice. It adds what the gateway adds in front of a message
//! (the `Received:` trace line, a `Message-ID:` where outbound mail lacks
//! one) and hands the result to the queue, which fsyncs it. Anything that
//! must be the same at every delivery attempt belongs here: the queue keeps
//! the prepared bytes, so a retry sends what was signed. Outbound mail of a
//! domain with an active DKIM key is signed here ([`enqueue_signed`]).

use ugem_queue::{Direction, NewEnvelope, Queue, QueueError, QueueId};

use crate::dkim::{Signers, SourceBody};
use crate::domain::Domain;

/// A message's content as the queue will take it.
#[derive(Debug)]
pub enum Body {
    /// Held in memory.
    Memory(Vec<u8>),
    /// In an (unlinked) spool file of this many bytes: read straight into
    /// the queue, never held whole in memory.
    Spooled(std::fs::File, u64),
}

impl Body {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(b) => b.len() as u64,
            Body::Spooled(_, n) => *n,
        }
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a message comes from, and so what the gateway adds to it.
#[derive(Debug)]
pub enum Origin {
    /// Accepted over SMTP: `received` is its trace line (CRLF-terminated);
    /// with `message_id`, the message lacks one and gets this one.
    Smtp {
        /// The `Received:` header field.
        received: String,
        /// A `Message-ID` to add (`local@host`, without brackets).
        message_id: Option<String>,
    },
    /// Made by the gateway itself (bounces, warnings, notices): complete.
    Gateway,
}

/// The header fields the gateway puts in front of a message of `origin`.
pub fn added_fields(origin: &Origin) -> String {
    match origin {
        Origin::Smtp {
            received,
            message_id,
        } => {
            let mut head = received.clone();
            if let Some(id) = message_id {
                head.push_str(&format!("Message-ID: <{id}>\r\n"));
            }
            head
        }
        Origin::Gateway => String::new(),
    }
}

/// Prepares a message and queues it; the id once it is on disk (fsynced).
/// The envelope's size is set here, to what is queued.
pub async fn enqueue(
    queue: &Queue,
    envelope: NewEnvelope,
    origin: Origin,
    body: Body,
) -> Result<QueueId, QueueError> {
    let head = added_fields(&origin);
    enqueue_head(queue, envelope, head, body).await
}

/// [`enqueue`], signing outbound mail of a registered domain that has an
/// active DKIM key (`d=` that domain). A signature the agency made stays
/// as it is; ours goes on top. Should signing fail, the message goes
/// unsigned (and the failure is logged): refusing it would not help.
pub async fn enqueue_signed(
    queue: &Queue,
    signers: &Signers,
    envelope: NewEnvelope,
    origin: Origin,
    body: Body,
) -> Result<QueueId, QueueError> {
    let head = added_fields(&origin);
    let domain = match (&envelope.direction, envelope.domain.as_deref()) {
        (Direction::Outbound, Some(d)) => Domain::parse(d).ok(),
        _ => None,
    };
    let Some(domain) = domain.filter(|d| signers.signs_for(d)) else {
        return enqueue_head(queue, envelope, head, body).await;
    };
    let signers = signers.clone();
    // Hashing (and a spooled body's reading) blocks: off the runtime.
    let signed = tokio::task::spawn_blocking(move || {
        let (result, body) = match body {
            Body::Memory(b) => (
                signers.sign(&domain, head.as_bytes(), SourceBody::Memory(&b)),
                Body::Memory(b),
            ),
            Body::Spooled(f, len) => (
                signers.sign(&domain, head.as_bytes(), SourceBody::File(&f, len)),
                Body::Spooled(f, len),
            ),
        };
        (result, domain, head, body)
    })
    .await;
    let (head, body) = match signed {
        Ok((Ok(Some(field)), _, head, body)) => (field + &head, body),
        Ok((Ok(None), _, head, body)) => (head, body),
        Ok((Err(e), domain, head, body)) => {
            tracing::error!(domain = %domain, error = %e, "DKIM signing failed; the message goes unsigned");
            (head, body)
        }
        Err(e) => {
            // The task panicked and took the body with it.
            tracing::error!(error = %e, "DKIM signing task failed");
            return Err(QueueError::Storage("DKIM signing task failed".into()));
        }
    };
    enqueue_head(queue, envelope, head, body).await
}

async fn enqueue_head(
    queue: &Queue,
    mut envelope: NewEnvelope,
    head: String,
    body: Body,
) -> Result<QueueId, QueueError> {
    envelope.size = head.len() as u64 + body.len();
    match body {
        Body::Memory(b) if head.is_empty() => queue.enqueue(envelope, b).await,
        Body::Memory(b) => {
            let mut message = Vec::with_capacity(head.len() + b.len());
            message.extend_from_slice(head.as_bytes());
            message.extend_from_slice(&b);
            queue.enqueue(envelope, message).await
        }
        Body::Spooled(file, len) => {
            queue
                .enqueue_file(envelope, head.into_bytes(), file, len)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_mail_gets_its_trace_line_and_a_missing_message_id() {
        let o = Origin::Smtp {
            received: "Received: from a by b; Tue, 1 Dec 2026 10:00:00 +0000\r\n".into(),
            message_id: Some("s1.1@gw.example".into()),
        };
        assert_eq!(
            added_fields(&o),
            "Received: from a by b; Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <s1.1@gw.example>\r\n"
        );
        assert_eq!(added_fields(&Origin::Gateway), "");
    }

    #[tokio::test]
    async fn every_kind_of_body_is_queued_whole_with_its_size() {
        use std::io::{Seek, Write};
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(&dir.path().join("q"), Default::default()).unwrap();
        let env = |s: &str| NewEnvelope {
            sender: s.into(),
            recipients: vec!["r@x.example".into()],
            client_ip: None,
            helo: "h".into(),
            tls: None,
            domain: None,
            direction: ugem_queue::Direction::Local,
            arrived_at_ms: 0,
            size: 0,
        };
        let o = || Origin::Smtp {
            received: "Received: x\r\n".into(),
            message_id: None,
        };
        let a = enqueue(&q, env("a@x"), o(), Body::Memory(b"\r\nhi\r\n".to_vec()))
            .await
            .unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"\r\nspooled\r\n").unwrap();
        f.rewind().unwrap();
        let b = enqueue(&q, env("b@x"), o(), Body::Spooled(f, 11))
            .await
            .unwrap();
        let c = enqueue(
            &q,
            env("c@x"),
            Origin::Gateway,
            Body::Memory(b"Subject: n\r\n\r\nx\r\n".to_vec()),
        )
        .await
        .unwrap();
        for (id, want) in [
            (a, &b"Received: x\r\n\r\nhi\r\n"[..]),
            (b, b"Received: x\r\n\r\nspooled\r\n"),
            (c, b"Subject: n\r\n\r\nx\r\n"),
        ] {
            let e = q.get(id).unwrap().unwrap();
            assert_eq!(q.body(id).unwrap().unwrap(), want);
            assert_eq!(e.size, want.len() as u64);
        }
    }
}
