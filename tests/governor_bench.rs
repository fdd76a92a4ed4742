//! The cost of the policy and governor checks per RCPT with 100,000 distinct
//! senders (issue target: a median under 1 µs). Ignored by default; run with
//! `cargo test --release --test governor_bench -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use ugem::address::{ForwardPath, ReversePath};
use ugem::config::Config;
use ugem::domain::Domain;
use ugem::governor::Governor;
use ugem::policy::{self, MailVerdict, SenderStanding};
use ugem::registry::{NewDomain, Registry};

#[test]
#[ignore]
fn rcpt_check_cost_with_100k_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (local, shared) = ugem::store::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Arc::new(rt.block_on(Registry::open(Arc::new(shared))).unwrap());
    let domain = Domain::parse("agency.example.kz").unwrap();
    rt.block_on(registry.add_domain(NewDomain {
        name: domain.clone(),
        owner: "Agency".into(),
        servers: vec!["127.0.0.1/32".parse().unwrap()],
        contacts: vec![ugem::registry::parse_contact("it@agency.example.kz").unwrap()],
        inbound: None,
        shared_servers: false,
    }))
    .unwrap();
    let queue = ugem_queue::Queue::open(
        &dir.path().join("queue"),
        ugem_queue::QueueOptions::default(),
    )
    .unwrap();
    let mut cfg = Config::default();
    // Limits high enough that the benchmark measures checks, not refusals.
    cfg.governor.domain_recipients_per_hour = u32::MAX / 4;
    cfg.governor.domain_messages_per_hour = u32::MAX / 4;
    cfg.governor.sender_recipients_per_hour = u32::MAX / 4;
    cfg.governor.sender_recipients_per_minute = u32::MAX / 4;
    // Novelty allowances high enough that every recipient is accepted: the
    // accepting path is the longer one (memory look-up, insert, counting).
    cfg.governor.new_recipients_5min = u32::MAX / 4;
    cfg.governor.new_recipients_hour = u32::MAX / 4;
    cfg.governor.unproven_recipients_5min = u32::MAX / 4;
    cfg.governor.unproven_recipients_hour = u32::MAX / 4;
    cfg.governor.domain_new_recipients_5min = u32::MAX / 4;
    cfg.governor.domain_new_recipients_hour = u32::MAX / 4;
    cfg.server.data_dir = dir.path().to_path_buf();
    cfg.governor.max_tracked_senders = 200_000;
    let host = cfg.server.hostname.clone();
    let gov = Governor::new(
        ugem::config::Live::fixed(cfg),
        registry.clone(),
        local,
        queue,
    );
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();

    let senders: Vec<String> = (0..100_000)
        .map(|i| format!("user{i}@agency.example.kz"))
        .collect();
    // Warm up: every key exists before timing.
    for s in &senders {
        gov.check_rcpt(&registry.snapshot(), &domain, s, "warm@far.example")
            .unwrap();
    }
    let (to, _) = ForwardPath::parse("<citizen@far.example>").unwrap();
    let (from, _) = ReversePath::parse("<user1@agency.example.kz>").unwrap();
    let snap = registry.snapshot();
    let standing = match policy::mail_verdict(&snap, ip, &from, "postmaster@x") {
        MailVerdict::Accept(s @ SenderStanding::Relay { .. }) => s,
        _ => panic!("not a relay"),
    };
    let mut both = Vec::with_capacity(senders.len());
    let mut pol = Vec::with_capacity(senders.len());
    for (i, s) in senders.iter().enumerate() {
        let rcpt = format!("r{i}@far.example");
        let t = Instant::now();
        let snap = registry.snapshot();
        let v = policy::rcpt_verdict(&snap, &standing, &to, &host);
        let p = t.elapsed();
        let ok = gov.check_rcpt(&snap, &domain, s, &rcpt).is_ok();
        both.push(t.elapsed());
        pol.push(p);
        assert!(matches!(v, policy::RcptVerdict::Accept(_)) && ok);
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let (pm, _) = median(&mut pol);
    let (m, p99) = median(&mut both);
    println!(
        "per RCPT, 100k distinct senders: policy + governor median {m:?} (p99 {p99:?}), \
         policy alone {pm:?}; limiter keys {}",
        gov.status()["limiter_keys"]
    );

    // The same sender again and again: everything in cache, so this is the
    // cost of the work itself, without memory misses.
    let n: usize = std::env::var("HOT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let snap0 = registry.snapshot();
    let mut hot = Vec::with_capacity(n);
    for i in 0..n {
        let rcpt = format!("h{i}@far.example");
        let t = Instant::now();
        let _ = gov.check_rcpt(&snap0, &domain, &senders[0], &rcpt);
        hot.push(t.elapsed());
    }
    let (hm, _) = median(&mut hot);
    println!("one sender, cached, never-seen recipients: governor median {hm:?}");
    // The common case: a regular correspondent (the pair is remembered).
    let mut known = Vec::with_capacity(n);
    for i in 0..n {
        let rcpt = format!("h{}@far.example", i % 100);
        let t = Instant::now();
        let _ = gov.check_rcpt(&snap0, &domain, &senders[1], &rcpt);
        known.push(t.elapsed());
    }
    let (km, _) = median(&mut known);
    println!("one sender, cached, regular correspondents: governor median {km:?}");

    // Two sessions at once (the CI machine's two cores): the shared state is
    // sharded, so the checks should not queue behind one lock.
    let t = Instant::now();
    std::thread::scope(|sc| {
        for half in senders.chunks(senders.len() / 2) {
            let (gov, domain, registry) = (&gov, &domain, &registry);
            sc.spawn(move || {
                for (i, s) in half.iter().enumerate() {
                    assert!(
                        gov.check_rcpt(
                            &registry.snapshot(),
                            domain,
                            s,
                            &format!("t{i}@far.example")
                        )
                        .is_ok()
                    );
                }
            });
        }
    });
    println!(
        "two threads, 100k checks: {:?} per check of wall time (mean, RCPT formatting included)",
        t.elapsed() / senders.len() as u32
    );
}

/// A governor on a fresh store with limits too high to refuse anything, and
/// its registry and domain.
fn unbounded_governor(
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> (Arc<Governor>, Arc<Registry>, Domain) {
    let (local, shared) = ugem::store::open(dir).unwrap();
    let registry = Arc::new(rt.block_on(Registry::open(Arc::new(shared))).unwrap());
    let domain = Domain::parse("agency.example.kz").unwrap();
    rt.block_on(registry.add_domain(NewDomain {
        name: domain.clone(),
        owner: "Agency".into(),
        servers: vec!["127.0.0.1/32".parse().unwrap()],
        contacts: vec![ugem::registry::parse_contact("it@agency.example.kz").unwrap()],
        inbound: None,
        shared_servers: false,
    }))
    .unwrap();
    let queue =
        ugem_queue::Queue::open(&dir.join("queue"), ugem_queue::QueueOptions::default()).unwrap();
    let mut cfg = Config::default();
    let big = u32::MAX / 4;
    let g = &mut cfg.governor;
    (g.domain_recipients_per_hour, g.domain_messages_per_hour) = (big, big);
    (g.sender_recipients_per_hour, g.sender_recipients_per_minute) = (big, big);
    (g.new_recipients_5min, g.new_recipients_hour) = (big, big);
    (g.unproven_recipients_5min, g.unproven_recipients_hour) = (big, big);
    (g.domain_new_recipients_5min, g.domain_new_recipients_hour) = (big, big);
    g.max_tracked_senders = 200_000;
    cfg.server.data_dir = dir.to_path_buf();
    let gov = Governor::new(
        ugem::config::Live::fixed(cfg),
        registry.clone(),
        local,
        queue,
    );
    (gov, registry, domain)
}

/// The cost of the cluster exchange (issue #19, item 3): per RCPT on the
/// SMTP path (the observation pushed), and per observation in the
/// background on both sides (encoding the batch; reading it and taking it
/// in on the other node). Run with
/// `cargo test --release --test governor_bench cluster -- --ignored --nocapture`.
#[test]
#[ignore]
fn cluster_exchange_cost_per_rcpt() {
    use ugem::governor::cluster::{Batch, encode};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (alone, reg_alone, domain) = unbounded_governor(da.path(), &rt);
    let (joined, reg_joined, _) = unbounded_governor(db.path(), &rt);
    let (other, _, _) = unbounded_governor(dc.path(), &rt);
    let every = std::time::Duration::from_millis(200);
    assert!(joined.join_cluster(every) && other.join_cluster(every));
    let senders: Vec<String> = (0..1000)
        .map(|i| format!("user{i}@agency.example.kz"))
        .collect();
    let n: usize = std::env::var("CLUSTER_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rcpts: Vec<String> = (0..n)
        .map(|i| format!("r{i}@far{}.example", i % 97))
        .collect();
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    // Interleaved rounds, so that both governors see the same machine load.
    let (mut t_alone, mut t_joined) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (sa, sj) = (reg_alone.snapshot(), reg_joined.snapshot());
    let mut pushed = Vec::new();
    for (i, r) in rcpts.iter().enumerate() {
        let s = &senders[i % senders.len()];
        let t = Instant::now();
        assert!(alone.check_rcpt(&sa, &domain, s, r).is_ok());
        t_alone.push(t.elapsed());
        let t = Instant::now();
        assert!(joined.check_rcpt(&sj, &domain, s, r).is_ok());
        t_joined.push(t.elapsed());
        // Taken out every 1000 RCPTs, as the sender task does every 200 ms.
        if i % 1000 == 999 {
            pushed.extend(joined.cluster().unwrap().take());
        }
    }
    pushed.extend(joined.cluster().unwrap().take());
    let (ma, pa) = median(&mut t_alone);
    let (mj, pj) = median(&mut t_joined);
    let mean = |v: &[std::time::Duration]| v.iter().sum::<std::time::Duration>() / v.len() as u32;
    println!(
        "check_rcpt per RCPT, {n} never-seen recipients over 1000 senders: alone median {ma:?} \
         (p99 {pa:?}, mean {:?}); in a cluster median {mj:?} (p99 {pj:?}, mean {:?})",
        mean(&t_alone),
        mean(&t_joined)
    );

    // The background: encoding on the sending node.
    let t = Instant::now();
    let msgs = encode(
        "0123456789abcdef",
        0,
        &pushed,
        ugem::store::PEER_MESSAGE_MAX,
    );
    let enc = t.elapsed();
    let bytes: usize = msgs.iter().map(String::len).sum();
    println!(
        "encode: {:?} per observation; {} messages of {} bytes on average, {:.1} bytes per RCPT",
        enc / pushed.len() as u32,
        msgs.len(),
        bytes / msgs.len(),
        bytes as f64 / pushed.len() as f64
    );
    // Reading and taking in on the other node.
    let t = Instant::now();
    let mut read = 0;
    for m in &msgs {
        read += Batch::decode(m).unwrap().o.len();
    }
    let dec = t.elapsed();
    let c = other.cluster().unwrap();
    let t = Instant::now();
    for m in &msgs {
        other.take_in(c, m);
    }
    let all = t.elapsed();
    println!(
        "receiving node: decode {:?}, decode + take in {:?} per observation ({read} observations)",
        dec / read as u32,
        all / read as u32
    );
}
