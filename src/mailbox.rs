//! The postmaster's local mailbox: a Maildir under the data folder.
//!
//! With `server.postmaster_mailbox` on (the embedded default), mail for the
//! postmaster address (alarms, notices, bounces nobody else takes, and
//! `RCPT TO:<postmaster>`) is delivered here instead of over SMTP, so a
//! gateway without a mail server of its own still shows its alerts, and
//! nothing for the postmaster sits stuck in the queue. `ugem mailbox` reads it
//! through the admin API.
//!
//! Maildir because it needs no locking: a message is written whole under
//! `tmp/`, synced, then renamed into `new/` (one atomic step), and any MUA
//! (mutt -f, neomutt) can read the folder as well.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Why the mailbox could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// The file system refused.
    #[error("mailbox {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// No message by that id.
    #[error("no message {0} in the mailbox")]
    NotFound(String),
    /// An id that is not a plain file name of this mailbox.
    #[error("not a mailbox message id: {0:?}")]
    BadId(String),
}

/// One message as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The Maildir file name (unique; what `show` and `delete` take).
    pub id: String,
    /// When it was delivered, milliseconds since the epoch.
    pub delivered_ms: u64,
    /// The From header, decoded.
    pub from: String,
    /// The Subject header, decoded.
    pub subject: String,
    /// Size in bytes, the added Return-Path and Delivered-To included.
    pub size: u64,
    /// Whether it was read (`show`) already: moved from `new/` to `cur/`.
    pub seen: bool,
}

/// The mailbox folder (`data_dir/mailbox`).
#[derive(Debug, Clone)]
pub struct Mailbox {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MailboxError + '_ {
    move |source| MailboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Mailbox {
    /// The mailbox under `data_dir`; folders are made on first delivery.
    pub fn new(data_dir: &Path) -> Mailbox {
        Mailbox {
            root: data_dir.join("mailbox"),
        }
    }

    /// The Maildir's folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Delivers one message for `rcpt`, durably: when this returns the
    /// message and its name are on disk. Returns the message's id.
    pub fn deliver(
        &self,
        queue_id: &str,
        index: usize,
        sender: &str,
        rcpt: &str,
        body: &[u8],
    ) -> Result<String, MailboxError> {
        for sub in ["tmp", "new", "cur"] {
            let p = self.root.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // Maildir names: time, then something unique on this host (the
        // queue id and the recipient's index: a retry after a crash between
        // rename and the queue's record gives the same name, so the message
        // is not delivered twice).
        let id = format!("{}.{}_{}.ugem", now.as_secs(), sanitize(queue_id), index);
        if let Some(existing) = self.find(&format!(".{}_{}.ugem", sanitize(queue_id), index)) {
            return Ok(existing);
        }
        let tmp = self.root.join("tmp").join(&id);
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        // RFC 5321 4.4: the final delivery adds Return-Path; Delivered-To
        // names the mailbox, as Postfix's local(8) does.
        let head = format!("Return-Path: <{}>\r\nDelivered-To: {}\r\n", sender, rcpt);
        f.write_all(head.as_bytes()).map_err(io(&tmp))?;
        f.write_all(body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        let new = self.root.join("new").join(&id);
        fs::rename(&tmp, &new).map_err(io(&new))?;
        let dir = self.root.join("new");
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        Ok(id)
    }

    /// The message file with a name ending in `suffix`, in `new/` or `cur/`.
    fn find(&self, suffix: &str) -> Option<String> {
        ["new", "cur"].iter().find_map(|sub| {
            fs::read_dir(self.root.join(sub)).ok()?.find_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let base = name.split(':').next().unwrap_or(&name);
                base.ends_with(suffix).then(|| base.to_string())
            })
        })
    }

    /// Every message, newest first.
    pub fn list(&self) -> Result<Vec<Entry>, MailboxError> {
        let mut out = Vec::new();
        for (sub, seen) in [("new", false), ("cur", true)] {
            let dir = self.root.join(sub);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for e in entries {
                let e = e.map_err(io(&dir))?;
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let path = e.path();
                let data = fs::read(&path).map_err(io(&path))?;
                let (from, subject) = summary(&data);
                let delivered_ms = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                out.push(Entry {
                    id: name.split(':').next().unwrap_or(&name).to_string(),
                    delivered_ms,
                    from,
                    subject,
                    size: data.len() as u64,
                    seen,
                });
            }
        }
        out.sort_by(|a, b| b.delivered_ms.cmp(&a.delivered_ms).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// One message, whole; marks it seen (moves it to `cur/` with the
    /// Maildir `:2,S` flag).
    pub fn read(&self, id: &str) -> Result<Vec<u8>, MailboxError> {
        let path = self.locate(id)?;
        let data = fs::read(&path).map_err(io(&path))?;
        if path.parent().and_then(Path::file_name) == Some("new".as_ref()) {
            let cur = self.root.join("cur").join(format!("{id}:2,S"));
            // A reader racing us may have moved it: the content is read.
            let _ = fs::rename(&path, &cur);
        }
        Ok(data)
    }

    /// Deletes one message.
    pub fn delete(&self, id: &str) -> Result<(), MailboxError> {
        let path = self.locate(id)?;
        fs::remove_file(&path).map_err(io(&path))
    }

    fn locate(&self, id: &str) -> Result<PathBuf, MailboxError> {
        if id.is_empty() || id.contains(['/', '\\', ':']) || id.starts_with('.') {
            return Err(MailboxError::BadId(id.to_string()));
        }
        let new = self.root.join("new").join(id);
        if new.is_file() {
            return Ok(new);
        }
        find_in(&self.root.join("cur"), id).ok_or_else(|| MailboxError::NotFound(id.to_string()))
    }
}

/// The file in `dir` whose Maildir base name (before `:`) is `id`.
fn find_in(dir: &Path, id: &str) -> Option<PathBuf> {
    fs::read_dir(dir).ok()?.find_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().into_string().ok()?;
        (name.split(':').next() == Some(id)).then(|| e.path())
    })
}

/// Queue ids are hex, but a file name must never carry a path.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// From and Subject, decoded (RFC 2047 words included).
fn summary(data: &[u8]) -> (String, String) {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(data) else {
        return (String::new(), String::new());
    };
    let from = m
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (None, Some(ad)) => ad.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    let subject = m.subject().unwrap_or_default().to_string();
    (from, subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Mail gateway postmaster <postmaster@gw.example>\r\n\
Subject: =?utf-8?q?=D0=9E=D1=87=D0=B5=D1=80=D0=B5=D0=B4=D1=8C?= backs up\r\n\
\r\nbody\r\n";

    #[test]
    fn delivers_lists_reads_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::new(dir.path());
        assert!(mb.list().unwrap().is_empty(), "no folder yet: empty");
        let id = mb
            .deliver("0a1b", 0, "", "postmaster@gw.example", MSG)
            .unwrap();
        assert!(dir.path().join("mailbox/new").join(&id).is_file());
        assert!(
            fs::read_dir(dir.path().join("mailbox/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        let l = mb.list().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].subject, "Очередь backs up");
        assert_eq!(l[0].from, "Mail gateway postmaster <postmaster@gw.example>");
        assert!(!l[0].seen);
        let data = mb.read(&id).unwrap();
        assert!(data.starts_with(b"Return-Path: <>\r\nDelivered-To: postmaster@gw.example\r\n"));
        assert!(data.ends_with(MSG));
        assert!(mb.list().unwrap()[0].seen, "read: moved to cur/");
        assert_eq!(mb.read(&id).unwrap(), data, "still readable from cur/");
        mb.delete(&id).unwrap();
        assert!(mb.list().unwrap().is_empty());
        assert!(matches!(mb.read(&id), Err(MailboxError::NotFound(_))));
    }

    #[test]
    fn a_retried_delivery_is_not_a_second_message() {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::new(dir.path());
        let a = mb
            .deliver("q1", 2, "a@b.example", "pm@gw.example", MSG)
            .unwrap();
        let b = mb
            .deliver("q1", 2, "a@b.example", "pm@gw.example", MSG)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(mb.list().unwrap().len(), 1);
        mb.read(&a).unwrap();
        let c = mb
            .deliver("q1", 2, "a@b.example", "pm@gw.example", MSG)
            .unwrap();
        assert_eq!(a, c, "found in cur/ too");
        assert_eq!(mb.list().unwrap().len(), 1);
        mb.deliver("q1", 3, "a@b.example", "pm@gw.example", MSG)
            .unwrap();
        assert_eq!(mb.list().unwrap().len(), 2, "another recipient index");
    }

    #[test]
    fn ids_cannot_reach_outside_the_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::new(dir.path());
        for bad in ["../ugem.redb", "new/x", "", ".hidden", "a:2,S"] {
            assert!(matches!(mb.read(bad), Err(MailboxError::BadId(_))), "{bad}");
            assert!(
                matches!(mb.delete(bad), Err(MailboxError::BadId(_))),
                "{bad}"
            );
        }
    }
}
