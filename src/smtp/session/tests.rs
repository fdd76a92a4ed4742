//! The command loop over an in-memory duplex: pipelining, framing and the
//! limits that apply to every command.

use super::Close;
use super::testkit::*;

#[tokio::test]
async fn a_pipelined_batch_gets_its_replies_in_order() {
    let rig = rig();
    let mut c = rig.ehlo(AGENCY_IP).await;
    c.send(concat!(
        "MAIL FROM:<it@agency.example.kz>\r\n",
        "RCPT TO:<one@external.example>\r\n",
        "RCPT TO:<someone@[203.0.113.5]>\r\n",
        "RCPT TO:<two@external.example>\r\n",
        "DATA\r\n",
    ))
    .await;
    let codes = [
        c.reply().await,
        c.reply().await,
        c.reply().await,
        c.reply().await,
        c.reply().await,
    ]
    .map(|a| a.code);
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    c.send("Subject: batch\r\n\r\nhi\r\n.\r\nQUIT\r\n").await;
    let queued = c.expect(250).await;
    c.expect(221).await;
    let (env, _) = rig.queued(&queued);
    assert_eq!(env.recipients.len(), 2);
    assert_eq!(c.closed().await, Close::Quit);
}

#[tokio::test]
async fn commands_sent_before_the_ehlo_reply_close_the_session() {
    let rig = rig();
    let mut c = rig.connect(AGENCY_IP);
    c.expect(220).await;
    c.send("EHLO client.example\r\nMAIL FROM:<it@agency.example.kz>\r\n")
        .await;
    assert_eq!(
        c.expect(503).await.text(),
        "5.5.0 improper use of SMTP command pipelining; closing connection"
    );
    assert_eq!(c.closed().await, Close::Pipelining);
}

#[tokio::test]
async fn message_text_sent_ahead_of_the_354_closes_the_session() {
    let rig = rig();
    let mut c = rig.ehlo(AGENCY_IP).await;
    c.send("MAIL FROM:<it@agency.example.kz>\r\nRCPT TO:<a@external.example>\r\n")
        .await;
    c.expect(250).await;
    c.expect(250).await;
    c.send("DATA\r\nSubject: early\r\n").await;
    c.expect(503).await;
    assert_eq!(c.closed().await, Close::Pipelining);
    assert_eq!(rig.queued_count(), 0);
}

#[tokio::test]
async fn a_command_line_too_long_is_refused_and_the_session_goes_on() {
    let rig = rig_with(|cfg, _| cfg.smtp.max_line_length = 100);
    let mut c = rig.ehlo(AGENCY_IP).await;
    c.send(&format!("NOOP {}\r\n", "x".repeat(200))).await;
    assert_eq!(c.expect(500).await.text(), "5.5.2 line too long");
    // A line at the limit (CRLF included) is still a command.
    c.send(&format!("NOOP {}\r\n", "x".repeat(93))).await;
    c.expect(250).await;
}

#[tokio::test]
async fn a_bare_newline_in_a_command_closes_the_session() {
    let rig = rig();
    let mut c = rig.ehlo(AGENCY_IP).await;
    c.send("NOOP\nNOOP\r\n").await;
    assert_eq!(
        c.expect(521).await.text(),
        "5.5.2 bare CR or LF in command; closing connection"
    );
    assert_eq!(c.closed().await, Close::Smuggling);
}

#[tokio::test]
async fn a_foreign_protocol_is_dropped_at_once() {
    let rig = rig();
    let mut c = rig.connect(STRANGER_IP);
    c.expect(220).await;
    // The first octets of a TLS ClientHello: no CRLF will ever come.
    c.send_bytes(&[0x16, 0x03, 0x01, 0x02, 0x00]).await;
    assert_eq!(c.closed().await, Close::ForeignProtocol);
}

#[tokio::test]
async fn shutdown_answers_421_and_the_client_keeps_its_mail() {
    let rig = rig();
    let mut c = rig.ehlo(AGENCY_IP).await;
    c.send("MAIL FROM:<it@agency.example.kz>\r\nRCPT TO:<a@external.example>\r\nDATA\r\n")
        .await;
    for code in [250, 250, 354] {
        c.expect(code).await;
    }
    c.send("Subject: half\r\n\r\nhalf a message").await;
    rig.stop.send(true).unwrap();
    assert_eq!(
        c.expect(421).await.text(),
        "4.3.2 gateway shutting down, try again later"
    );
    assert_eq!(c.closed().await, Close::Shutdown);
    assert_eq!(rig.queued_count(), 0);
}

#[tokio::test]
async fn the_end_of_the_stream_ends_the_session() {
    let rig = rig();
    let mut c = rig.ehlo(AGENCY_IP).await;
    tokio::io::AsyncWriteExt::shutdown(&mut c.io).await.unwrap();
    assert_eq!(c.closed().await, Close::Eof);
}

#[tokio::test]
async fn an_idle_session_stays_small() {
    // What a session waiting for its next command holds: its task's future
    // (the session inside it) and the 256-byte read buffer. 10,000 idle
    // sessions must fit in 200 MB (bench/idle-sessions.py); the verbs'
    // large futures are boxed for the time a command runs.
    let rig = super::testkit::rig();
    let (_client, server) = tokio::io::duplex(1024);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let fut = super::run(rig.gw.clone(), server, "192.0.2.9:1".parse().unwrap(), stop);
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 4096, "an idle session's future is {size} bytes");
}
