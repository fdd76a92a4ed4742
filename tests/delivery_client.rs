//! The outbound SMTP client against a fake remote MX: what arrives on the
//! wire, per-recipient results, deferrals, broken and slow servers,
//! connection reuse, STARTTLS per policy, local refusals and hostile replies.

#[path = "common/fake_mx.rs"]
mod fake_mx;

use std::time::{Duration, Instant};

use fake_mx::{Behaviour, FakeMx, Hostile, TestPki, has_bare_line_ending};
use ugem::delivery::client::{
    ClientSettings, ConnError, Connection, RcptResult, ReplyError, Target, Timeouts, TlsPolicy,
    wire_form,
};

const HELO: &str = "gw.test.example";
const MX_NAME: &str = "mx.test.example";

fn settings(tls: TlsPolicy) -> ClientSettings {
    let t = Duration::from_secs(10);
    let mut s = ClientSettings::new(HELO);
    s.tls = tls;
    s.timeouts = Timeouts {
        connect: t,
        greeting: t,
        command: t,
        data_init: t,
        data_block: t,
        data_end: t,
    };
    s
}

fn target(mx: &FakeMx) -> Target {
    Target {
        host: MX_NAME.into(),
        addr: mx.addr(),
    }
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Nothing the client ever sent had a bare CR or LF.
fn assert_clean_wire(mx: &FakeMx) {
    for (i, bytes) in mx.inbound().iter().enumerate() {
        assert!(
            !has_bare_line_ending(bytes),
            "bare CR/LF on connection {}",
            i + 1
        );
    }
}

fn delivered(r: &RcptResult) -> bool {
    matches!(r, RcptResult::Delivered { .. })
}

const BODY: &[u8] = b"From: a@agency.example\r\n\
    To: b@remote.example\r\n\
    Subject: dots\r\n\
    \r\n\
    line one\r\n\
    .leading dot\r\n\
    ..two dots\r\n\
    .\r\n\
    last line\r\n";

#[tokio::test]
async fn plain_delivery_is_byte_exact_and_dot_stuffed() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap();
    assert_eq!(c.tls(), None);
    assert_eq!(c.remote(), format!("{MX_NAME} [127.0.0.1]"));
    let res = c
        .send("a@agency.example", &rcpts(&["b@remote.example"]), BODY)
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![RcptResult::Delivered {
            reply: "250 2.0.0 queued as 1.1".into()
        }]
    );
    c.quit().await;

    let msgs = mx.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.helo, HELO);
    assert_eq!(m.sender, "a@agency.example");
    assert_eq!(m.recipients, ["b@remote.example"]);
    assert_eq!(m.body, BODY);
    let expected: &[u8] = b"From: a@agency.example\r\n\
        To: b@remote.example\r\n\
        Subject: dots\r\n\
        \r\n\
        line one\r\n\
        ..leading dot\r\n\
        ...two dots\r\n\
        ..\r\n\
        last line\r\n\
        .\r\n";
    assert_eq!(m.wire, expected);
    assert_eq!(wire_form(BODY), expected);
    assert!(mx.verbs().ends_with(&["QUIT".to_string()]));
    assert_clean_wire(&mx);
}

#[tokio::test]
async fn a_leading_dot_line_cannot_end_the_data_early() {
    // mail-send's data() would send this first line unstuffed: the server
    // would see the end of data and then a second, smuggled transaction.
    let body = b".\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@remote.example>\r\nDATA\r\nsmuggled\r\n";
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let res = c
        .send("a@agency.example", &rcpts(&["b@remote.example"]), body)
        .await
        .unwrap();
    assert!(delivered(&res[0]), "{res:?}");
    c.quit().await;
    let msgs = mx.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body, body);
    assert_eq!(mx.verbs().iter().filter(|v| *v == "MAIL").count(), 1);
}

#[tokio::test]
async fn size_is_announced_and_8bit_and_utf8_are_flagged() {
    let mx = FakeMx::start(Behaviour::accept().with_size(1_000_000));
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    assert_eq!(c.extensions().size, Some(1_000_000));
    let body = "Subject: gr\u{fc}\u{df}e\r\n\r\nk\u{e4}se\r\n".as_bytes();
    let res = c
        .send(
            "a@agency.example",
            &rcpts(&["j\u{fc}rgen@remote.example"]),
            body,
        )
        .await
        .unwrap();
    assert!(delivered(&res[0]), "{res:?}");
    let m = &mx.messages()[0];
    assert_eq!(
        m.mail_params,
        format!(" SIZE={} BODY=8BITMIME SMTPUTF8", body.len())
    );
    assert_eq!(m.body, body);
}

#[tokio::test]
async fn mixed_recipients_get_their_own_results_and_rcpts_are_pipelined() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let list = rcpts(&[
        "a@remote.example",
        "reject1@remote.example",
        "b@remote.example",
        "defer1@remote.example",
    ]);
    let res = c.send("s@agency.example", &list, BODY).await.unwrap();
    assert_eq!(
        res,
        vec![
            RcptResult::Delivered {
                reply: "250 2.0.0 queued as 1.1".into()
            },
            RcptResult::Failed {
                reply: "550 5.1.1 <reject1@remote.example>: user unknown".into()
            },
            RcptResult::Delivered {
                reply: "250 2.0.0 queued as 1.1".into()
            },
            RcptResult::Deferred {
                reply: "451 4.2.1 mailbox busy, try later".into()
            },
        ]
    );
    assert_eq!(
        mx.messages()[0].recipients,
        ["a@remote.example", "b@remote.example"]
    );
    // MAIL and the four RCPTs went in one write: four waited for a reply.
    assert!(mx.pipelined() >= 4, "pipelined {}", mx.pipelined());
    assert_clean_wire(&mx);
}

#[tokio::test]
async fn without_pipelining_commands_wait_for_replies() {
    let mx = FakeMx::start(Behaviour::accept().without_pipelining());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let list = rcpts(&[
        "a@remote.example",
        "reject1@remote.example",
        "b@remote.example",
    ]);
    let res = c.send("s@agency.example", &list, BODY).await.unwrap();
    assert!(
        delivered(&res[0]) && !delivered(&res[1]) && delivered(&res[2]),
        "{res:?}"
    );
    assert_eq!(mx.pipelined(), 0);
}

#[tokio::test]
async fn no_message_when_every_recipient_is_refused() {
    // With PIPELINING, DATA ends the group (RFC 2920) and is refused with 503;
    // without it, DATA is never sent.
    for (pipelining, lax) in [(true, false), (false, false), (true, true)] {
        // `lax`: a server that answers 354 to DATA anyway; the client ends the empty
        // message with the bare dot.
        let b = if lax {
            Behaviour::accept().with_lax_data()
        } else {
            Behaviour::accept()
        };
        let mx = FakeMx::start(if pipelining {
            b
        } else {
            b.without_pipelining()
        });
        let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
            .await
            .unwrap();
        let res = c
            .send(
                "s@agency.example",
                &rcpts(&["reject1@remote.example", "reject2@remote.example"]),
                BODY,
            )
            .await
            .unwrap();
        assert!(
            res.iter().all(|r| matches!(r, RcptResult::Failed { .. })),
            "{res:?}"
        );
        assert_eq!(mx.verbs().contains(&"DATA".to_string()), pipelining);
        assert!(mx.attempts().is_empty());
        // The connection stays in step: the next message goes through.
        let ok = c
            .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
            .await
            .unwrap();
        assert!(delivered(&ok[0]), "{ok:?}");
        assert_eq!(mx.messages().len(), 1);
    }
}

#[tokio::test]
async fn a_421_in_the_middle_of_the_recipients_defers_all_of_them() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let list = rcpts(&[
        "a@remote.example",
        "shutdown@remote.example",
        "b@remote.example",
    ]);
    let res = c.send("s@agency.example", &list, BODY).await.unwrap();
    let closing = RcptResult::Deferred {
        reply: "421 4.4.2 remote closing the connection".into(),
    };
    let shutdown = RcptResult::Deferred {
        reply: "421 4.3.2 shutting down".into(),
    };
    assert_eq!(res, vec![closing.clone(), shutdown, closing]);
    assert!(!c.is_usable());
    assert!(matches!(
        c.send("s@agency.example", &list, BODY).await,
        Err(ConnError::Unusable)
    ));
    assert!(mx.attempts().is_empty());
}

#[tokio::test]
async fn deferral_at_rcpt() {
    let mx = FakeMx::start(Behaviour::defer_rcpt());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let res = c
        .send(
            "s@agency.example",
            &rcpts(&["a@remote.example", "b@remote.example"]),
            BODY,
        )
        .await
        .unwrap();
    let expected = RcptResult::Deferred {
        reply: "451 4.3.0 try again later".into(),
    };
    assert_eq!(res, vec![expected.clone(), expected]);
    // The pipelined DATA was refused: nothing was sent.
    assert!(mx.attempts().is_empty());
}

#[tokio::test]
async fn deferral_and_rejection_at_end_of_data() {
    let mx = FakeMx::start(Behaviour::defer_data());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![RcptResult::Deferred {
            reply: "451 4.3.0 queue full, try again later".into()
        }]
    );
    assert!(mx.messages().is_empty());
    assert_eq!(mx.attempts().len(), 1);

    let mx = FakeMx::start(Behaviour::reject_data());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![RcptResult::Failed {
            reply: "554 5.6.0 content rejected".into()
        }]
    );
}

#[tokio::test]
async fn a_refused_sender_fails_every_recipient_and_the_connection_stays_usable() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let list = rcpts(&["a@remote.example", "b@remote.example"]);
    let res = c
        .send("reject-me@agency.example", &list, BODY)
        .await
        .unwrap();
    let failed = RcptResult::Failed {
        reply: "550 5.7.1 sender rejected".into(),
    };
    assert_eq!(res, vec![failed.clone(), failed]);
    let res = c
        .send("defer-me@agency.example", &list, BODY)
        .await
        .unwrap();
    assert!(
        res.iter().all(|r| matches!(r, RcptResult::Deferred { .. })),
        "{res:?}"
    );
    let res = c.send("ok@agency.example", &list, BODY).await.unwrap();
    assert!(res.iter().all(delivered), "{res:?}");
    assert_eq!(mx.connections(), 1);
    assert_eq!(mx.messages().len(), 1);
}

#[tokio::test]
async fn messages_share_one_connection_and_rset_comes_only_after_an_open_transaction() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let first = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    let second = c
        .send(
            "t@agency.example",
            &rcpts(&["b@remote.example"]),
            b"Subject: 2\r\n\r\nsecond\r\n",
        )
        .await
        .unwrap();
    // Every recipient refused: MAIL was accepted, DATA refused, the transaction stays open.
    let refused = c
        .send(
            "u@agency.example",
            &rcpts(&["reject-me@remote.example"]),
            BODY,
        )
        .await
        .unwrap();
    let third = c
        .send("v@agency.example", &rcpts(&["c@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&first[0]) && delivered(&second[0]) && delivered(&third[0]));
    assert!(
        matches!(refused[0], RcptResult::Failed { .. }),
        "{refused:?}"
    );
    assert!(c.is_usable());
    c.quit().await;
    assert_eq!(mx.connections(), 1);
    let msgs = mx.messages();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1].sender, "t@agency.example");
    assert_eq!(msgs[1].body, b"Subject: 2\r\n\r\nsecond\r\n");
    let verbs = mx.verbs();
    let at = |verb: &str| -> Vec<usize> {
        verbs
            .iter()
            .enumerate()
            .filter(|(_, v)| *v == verb)
            .map(|(i, _)| i)
            .collect()
    };
    let (mails, rsets) = (at("MAIL"), at("RSET"));
    // After a message that ended with the reply to its dot the next MAIL goes straight
    // out (RFC 5321 4.1.1.4); after the refused one, RSET first.
    assert_eq!(mails.len(), 4, "{verbs:?}");
    assert_eq!(rsets.len(), 1, "{verbs:?}");
    assert!(mails[2] < rsets[0] && rsets[0] < mails[3], "{verbs:?}");
}

#[tokio::test]
async fn a_drop_in_the_middle_of_data_is_a_temporary_error() {
    let mx = FakeMx::start(Behaviour::drop_in_data());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let big: Vec<u8> = b"Subject: big\r\n\r\n"
        .iter()
        .copied()
        .chain(
            b"0123456789"
                .repeat(100_000)
                .chunks(100)
                .flat_map(|l| [l, b"\r\n"].concat()),
        )
        .collect();
    let err = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), &big)
        .await
        .unwrap_err();
    assert!(!err.is_permanent());
    assert!(err.to_string().starts_with("4.4.2 "), "{err}");
    assert!(!c.is_usable());
    assert!(matches!(
        c.send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
            .await,
        Err(ConnError::Unusable)
    ));
    assert!(mx.attempts().is_empty());
}

#[tokio::test]
async fn a_slow_server_runs_into_the_timeout() {
    let mx = FakeMx::start(Behaviour::slow(Duration::from_secs(3)));
    let mut s = settings(TlsPolicy::None);
    s.timeouts.greeting = Duration::from_millis(300);
    let started = Instant::now();
    let err = Connection::open(&target(&mx), &s).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, ConnError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), "4.4.2 timeout waiting for the greeting");

    // Slow but within the limits: delivered.
    let mx = FakeMx::start(Behaviour::slow(Duration::from_millis(50)));
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
}

#[tokio::test]
async fn a_slow_reply_to_the_final_dot_uses_the_data_end_timeout() {
    let mx = FakeMx::start(Behaviour::slow(Duration::from_millis(400)));
    let mut s = settings(TlsPolicy::None);
    s.timeouts.data_end = Duration::from_millis(100);
    let mut c = Connection::open(&target(&mx), &s).await.unwrap();
    let err = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "4.4.2 timeout after end of data");
}

#[tokio::test]
async fn starttls_may_with_a_trusted_certificate() {
    let pki = TestPki::new(&[MX_NAME]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let mut s = settings(TlsPolicy::May);
    s.extra_roots = vec![pki.ca.clone()];
    let mut c = Connection::open(&target(&mx), &s).await.unwrap();
    let tls = c.tls().expect("encrypted").to_string();
    assert!(tls.starts_with("TLSv1.3 TLS13_"), "{tls}");
    assert!(c.tls_verified());
    assert!(
        !c.extensions().starttls,
        "the EHLO after TLS no longer offers it"
    );
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
    c.quit().await;
    assert_eq!(mx.connections(), 1);
    let m = &mx.messages()[0];
    assert!(m.tls);
    assert_eq!(m.body, BODY);
    assert_clean_wire(&mx);
}

#[tokio::test]
async fn starttls_may_with_an_untrusted_certificate_still_encrypts() {
    // Postfix `may` semantics (RFC 7435): an unverifiable certificate is no
    // reason for plaintext, which is worse against every attacker.
    let pki = TestPki::new(&[MX_NAME]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap();
    assert!(c.tls().is_some());
    assert!(!c.tls_verified());
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
    assert_eq!(mx.connections(), 1);
    assert!(mx.messages()[0].tls);
}

#[tokio::test]
async fn starttls_may_falls_back_to_plaintext_when_the_handshake_fails() {
    let pki = TestPki::new(&[MX_NAME]);
    let mut b = Behaviour::starttls(pki.server.clone());
    b.tls_broken = true;
    let mx = FakeMx::start(b);
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap();
    assert_eq!(c.tls(), None);
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
    assert_eq!(mx.connections(), 2);
    let m = &mx.messages()[0];
    assert!(!m.tls);
    assert_eq!(m.connection, 2);
    assert_eq!(mx.verbs().iter().filter(|v| *v == "STARTTLS").count(), 1);
}

#[tokio::test]
async fn starttls_verify_refuses_an_untrusted_certificate() {
    let pki = TestPki::new(&[MX_NAME]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let err = Connection::open(&target(&mx), &settings(TlsPolicy::Verify))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnError::Tls { .. }), "{err:?}");
    assert!(err.to_string().starts_with("4.7.5 TLS failed"), "{err}");
    assert!(!err.is_permanent());
    assert_eq!(mx.connections(), 1);
    assert!(!mx.verbs().contains(&"MAIL".to_string()));
    assert!(mx.attempts().is_empty());
}

#[tokio::test]
async fn starttls_verify_checks_the_name() {
    let pki = TestPki::new(&["other.test.example"]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let mut s = settings(TlsPolicy::Verify);
    s.extra_roots = vec![pki.ca.clone()];
    let err = Connection::open(&target(&mx), &s).await.unwrap_err();
    assert!(matches!(err, ConnError::Tls { .. }), "{err:?}");

    let pki = TestPki::new(&[MX_NAME]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    s.extra_roots = vec![pki.ca.clone()];
    let mut c = Connection::open(&target(&mx), &s).await.unwrap();
    assert!(c.tls_verified());
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
}

#[tokio::test]
async fn encrypt_takes_any_certificate_but_requires_starttls() {
    let pki = TestPki::new(&["whatever.example"]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let c = Connection::open(&target(&mx), &settings(TlsPolicy::Encrypt))
        .await
        .unwrap();
    assert!(c.tls().is_some() && !c.tls_verified());
    c.quit().await;

    let mx = FakeMx::start(Behaviour::accept());
    let err = Connection::open(&target(&mx), &settings(TlsPolicy::Encrypt))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "4.7.4 TLS required but STARTTLS not offered"
    );
    assert!(!mx.verbs().contains(&"MAIL".to_string()));
}

#[tokio::test]
async fn policy_none_never_starts_tls() {
    let pki = TestPki::new(&[MX_NAME]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    assert!(c.extensions().starttls);
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
    assert!(!mx.verbs().contains(&"STARTTLS".to_string()));
}

#[tokio::test]
async fn bare_line_endings_and_nul_are_refused_locally() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let list = rcpts(&["a@remote.example", "b@remote.example"]);
    for (body, why) in [
        (
            &b"Subject: x\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\n"[..],
            "bare line endings",
        ),
        (&b"Subject: x\r\n\r\nline\r.\r\r\n"[..], "bare line endings"),
        (&b"Subject: x\r\n\r\n\0.\r\n"[..], "NUL"),
    ] {
        let res = c.send("s@agency.example", &list, body).await.unwrap();
        assert_eq!(res.len(), 2);
        for r in &res {
            let RcptResult::Failed { reply } = r else {
                panic!("{r:?}");
            };
            assert!(
                reply.starts_with("5.6.0 ") && reply.contains(why),
                "{reply}"
            );
        }
    }
    // Nothing of it was sent: only the EHLO.
    assert_eq!(mx.verbs(), ["EHLO"]);
    assert!(c.is_usable());
    let res = c.send("s@agency.example", &list, BODY).await.unwrap();
    assert!(res.iter().all(delivered));
    assert_clean_wire(&mx);
}

#[tokio::test]
async fn a_message_over_the_remote_size_is_refused_locally() {
    let mx = FakeMx::start(Behaviour::accept().with_size(100));
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::None))
        .await
        .unwrap();
    let body = [
        b"Subject: big\r\n\r\n".to_vec(),
        b"x".repeat(200),
        b"\r\n".to_vec(),
    ]
    .concat();
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), &body)
        .await
        .unwrap();
    let RcptResult::Failed { reply } = &res[0] else {
        panic!("{res:?}");
    };
    assert!(reply.starts_with("5.3.4 "), "{reply}");
    assert!(!mx.verbs().contains(&"MAIL".to_string()));
}

#[tokio::test]
async fn helo_when_ehlo_is_refused() {
    let mx = FakeMx::start(Behaviour::accept().without_ehlo().with_size(10));
    let mut c = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap();
    // No EHLO, no extensions: the SIZE limit is unknown and not applied.
    assert_eq!(c.extensions().size, None);
    let res = c
        .send("s@agency.example", &rcpts(&["a@remote.example"]), BODY)
        .await
        .unwrap();
    assert!(delivered(&res[0]));
    assert_eq!(mx.messages()[0].helo, HELO);
    assert_eq!(mx.messages()[0].mail_params, "");
    assert_eq!(&mx.verbs()[..2], ["EHLO", "HELO"]);
    assert_eq!(mx.pipelined(), 0);
}

#[tokio::test]
async fn a_5xx_greeting_is_refused_and_permanent_for_that_host() {
    let mut b = Behaviour::accept();
    b.greeting = "554 5.7.1 go away".into();
    let mx = FakeMx::start(b);
    let err = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "554 5.7.1 go away (in reply to the greeting)"
    );
    assert!(err.is_permanent());
    assert_eq!(mx.verbs(), ["QUIT"]);
}

#[tokio::test]
async fn connection_refused() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let t = Target {
        host: MX_NAME.into(),
        addr,
    };
    let err = Connection::open(&t, &settings(TlsPolicy::May))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnError::Connect { .. }), "{err:?}");
    assert!(err.to_string().starts_with("4.4.1 cannot connect"), "{err}");
}

/// Resident memory of this test process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_one_mib_reply_line_is_an_error_not_a_memory_sink() {
    let before = rss_kib();
    let mx = FakeMx::start(Behaviour::hostile(Hostile::LongLine(1 << 20)));
    let err = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnError::BadReply {
                why: ReplyError::LineTooLong,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("4.5.0 bad reply waiting for the greeting"),
        "{err}"
    );
    let grown = rss_kib().saturating_sub(before);
    // Other tests run alongside; a buffered 1 MiB line (or more) would be far above this.
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
}

#[tokio::test]
async fn an_endless_multiline_reply_is_cut_off() {
    let mx = FakeMx::start(Behaviour::hostile(Hostile::EndlessMultiline));
    let started = Instant::now();
    let err = Connection::open(&target(&mx), &settings(TlsPolicy::May))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnError::BadReply {
                why: ReplyError::TooManyLines,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let mx = FakeMx::start(Behaviour::hostile(Hostile::Silent));
    let mut s = settings(TlsPolicy::May);
    s.timeouts.greeting = Duration::from_millis(200);
    let err = Connection::open(&target(&mx), &s).await.unwrap_err();
    assert!(matches!(err, ConnError::Timeout { .. }), "{err:?}");
}
