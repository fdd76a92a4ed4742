use super::*;
use crate::registry::{NewDomain, Registry, SuspendRequest, parse_contact, parse_server};

const PM: &str = "postmaster@gw.example.kz";

async fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = crate::store::open(dir.path()).unwrap();
    let r = Registry::open(std::sync::Arc::new(store)).await.unwrap();
    for (name, server) in [
        ("agency.example.kz", "192.0.2.0/29"),
        ("other.example.kz", "2001:db8::/64"),
    ] {
        r.add_domain(NewDomain {
            name: Domain::parse(name).unwrap(),
            owner: String::new(),
            servers: vec![parse_server(server).unwrap()],
            contacts: vec![parse_contact("it@agency.example.kz").unwrap()],
            inbound: None,
            shared_servers: false,
        })
        .await
        .unwrap();
    }
    (dir, r)
}

fn from(s: &str) -> ReversePath {
    ReversePath::parse(&format!("<{s}>")).unwrap().0
}

fn to(s: &str) -> ForwardPath {
    ForwardPath::parse(&format!("<{s}>")).unwrap().0
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn standing(v: MailVerdict) -> SenderStanding {
    match v {
        MailVerdict::Accept(s) => s,
        MailVerdict::Refuse(r) => panic!("refused: {r:?}"),
    }
}

fn refused_code(v: MailVerdict) -> u16 {
    match v {
        MailVerdict::Refuse(r) => r.code,
        MailVerdict::Accept(s) => panic!("accepted: {s:?}"),
    }
}

#[tokio::test]
async fn registered_client_relays_anywhere() {
    let (_d, r) = registry().await;
    let snap = r.snapshot();
    let gw = Domain::parse("gw.example.kz").unwrap();
    let s = standing(mail_verdict(
        &snap,
        ip("192.0.2.5"),
        &from("clerk@agency.example.kz"),
        PM,
    ));
    assert!(matches!(s, SenderStanding::Relay { .. }));
    assert!(matches!(
        rcpt_verdict(&snap, &s, &to("x@example.org"), &gw),
        RcptVerdict::Accept(RcptKind::Outbound)
    ));
    // A registered recipient is inbound even from a relaying agency.
    assert!(matches!(
        rcpt_verdict(&snap, &s, &to("x@other.example.kz"), &gw),
        RcptVerdict::Accept(RcptKind::Inbound(_))
    ));
    // IPv4-mapped IPv6 peers count as IPv4.
    let s = standing(mail_verdict(
        &snap,
        ip("::ffff:192.0.2.5"),
        &from("clerk@agency.example.kz"),
        PM,
    ));
    assert!(matches!(s, SenderStanding::Relay { .. }));
    // IPv6 servers.
    let s = standing(mail_verdict(
        &snap,
        ip("2001:db8::25"),
        &from("a@other.example.kz"),
        PM,
    ));
    assert!(matches!(s, SenderStanding::Relay { .. }));
}

#[tokio::test]
async fn wrong_ip_for_registered_sender_is_refused() {
    let (_d, r) = registry().await;
    let snap = r.snapshot();
    assert_eq!(
        refused_code(mail_verdict(
            &snap,
            ip("192.0.2.9"),
            &from("clerk@agency.example.kz"),
            PM
        )),
        550
    );
    // The agency's IP with the other agency's domain.
    assert_eq!(
        refused_code(mail_verdict(
            &snap,
            ip("192.0.2.5"),
            &from("a@other.example.kz"),
            PM
        )),
        550
    );
}

#[tokio::test]
async fn strangers_only_reach_registered_domains() {
    let (_d, r) = registry().await;
    let snap = r.snapshot();
    let gw = Domain::parse("gw.example.kz").unwrap();
    for sender in [
        "x@example.org",
        "",
        "x@sub.agency.example.kz",
        "x@[192.0.2.5]",
    ] {
        let rp = if sender.is_empty() {
            ReversePath::Null
        } else {
            from(sender)
        };
        // Even from a registered agency IP, a foreign sender gets no relay.
        let s = standing(mail_verdict(&snap, ip("192.0.2.5"), &rp, PM));
        assert!(matches!(s, SenderStanding::Inbound), "{sender}");
        assert!(
            matches!(rcpt_verdict(&snap, &s, &to("y@example.net"), &gw), RcptVerdict::Refuse(ref r) if r.code == 550)
        );
        assert!(matches!(
            rcpt_verdict(&snap, &s, &to("y@agency.example.kz"), &gw),
            RcptVerdict::Accept(RcptKind::Inbound(_))
        ));
        assert!(matches!(
            rcpt_verdict(&snap, &s, &to("y@[192.0.2.5]"), &gw),
            RcptVerdict::Refuse(_)
        ));
        assert!(matches!(
            rcpt_verdict(&snap, &s, &ForwardPath::Postmaster, &gw),
            RcptVerdict::Accept(RcptKind::Postmaster)
        ));
        assert!(matches!(
            rcpt_verdict(&snap, &s, &to("PostMaster@gw.example.kz"), &gw),
            RcptVerdict::Accept(RcptKind::Postmaster)
        ));
    }
}

#[tokio::test]
async fn suspensions_give_451() {
    let (_d, r) = registry().await;
    let agency = Domain::parse("agency.example.kz").unwrap();
    r.suspend_sender(
        "bot@agency.example.kz",
        SuspendRequest::manual("ops", "phishing"),
    )
    .await
    .unwrap();
    let snap = r.snapshot();
    let v = mail_verdict(&snap, ip("192.0.2.5"), &from("Bot@Agency.example.kz"), PM);
    match v {
        MailVerdict::Refuse(rep) => {
            assert_eq!(rep.code, 451);
            let t = rep.first_line();
            assert!(
                t.contains("4.7.1") && t.contains("since") && t.contains(PM),
                "{t}"
            );
        }
        other => panic!("{other:?}"),
    }
    standing(mail_verdict(
        &snap,
        ip("192.0.2.5"),
        &from("clerk@agency.example.kz"),
        PM,
    ));
    r.suspend_domain(&agency, SuspendRequest::manual("ops", "volume"))
        .await
        .unwrap();
    let snap = r.snapshot();
    assert_eq!(
        refused_code(mail_verdict(
            &snap,
            ip("192.0.2.5"),
            &from("clerk@agency.example.kz"),
            PM
        )),
        451
    );
    // Inbound mail to a suspended domain still flows.
    let gw = Domain::parse("gw.example.kz").unwrap();
    assert!(matches!(
        rcpt_verdict(
            &snap,
            &SenderStanding::Inbound,
            &to("x@agency.example.kz"),
            &gw
        ),
        RcptVerdict::Accept(RcptKind::Inbound(_))
    ));
}
