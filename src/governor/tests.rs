//! The governor on a manual clock: memory bounds, saved state, delivery
//! accounting, and a domain judged only on its own evidence.

use std::sync::Arc;

use super::classify::parse_record;
use super::clock::{Clock, ManualClock};
use super::detector::HOUR_MS;
use super::*;
use crate::registry::NewDomain;

/// Monday 2026-03-02 00:00 UTC.
const T0: u64 = 1_772_409_600_000;

struct Rig {
    gov: Arc<Governor>,
    clock: Arc<ManualClock>,
    d: Domain,
    rx: mpsc::UnboundedReceiver<Event>,
    _dir: tempfile::TempDir,
}

async fn rig(tune: impl FnOnce(&mut Config)) -> Rig {
    rig_in(tempfile::tempdir().unwrap(), tune, true).await
}

async fn rig_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut Config), add: bool) -> Rig {
    let (local, shared) = crate::store::open(dir.path()).unwrap();
    let registry = Arc::new(Registry::open(Arc::new(shared)).await.unwrap());
    let d = Domain::parse("agency.example.kz").unwrap();
    if add {
        let new: NewDomain = serde_json::from_value(serde_json::json!({
            "name": "agency.example.kz",
            "owner": "Agency",
            "servers": ["192.0.2.1"],
            "contacts": [{"name": "", "email": "it@agency.example.kz"}],
        }))
        .unwrap();
        registry.add_domain(new).await.unwrap();
    }
    let queue = ugem_queue::Queue::open(&dir.path().join("queue"), Default::default()).unwrap();
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.path().to_path_buf();
    tune(&mut cfg);
    let clock = Arc::new(ManualClock::new(T0));
    let gov = Governor::with_clock(
        crate::config::Live::fixed(cfg),
        registry,
        local,
        queue,
        clock.clone(),
        Some(dir.path().join("governor")),
    );
    let rx = gov.take_events().unwrap();
    Rig {
        gov,
        clock,
        d,
        rx,
        _dir: dir,
    }
}

impl Rig {
    fn rcpt(&self, sender: &str, rcpt: &str) -> Result<(), crate::reply::Reply> {
        self.gov
            .check_rcpt(&self.gov.registry.snapshot(), &self.d, sender, rcpt)
    }

    fn steps(&mut self) -> Vec<(String, Step, &'static str)> {
        let mut out = Vec::new();
        while let Ok(ev) = self.rx.try_recv() {
            if let Event::Step {
                scope, step, trip, ..
            } = ev
            {
                out.push((scope.to_string(), step, trip.rule));
            }
        }
        out
    }

    fn tracked(&self, name: &str) -> Option<Tracked> {
        let k = self.gov.keyer.key(name);
        self.gov.scopes.shard(k).get(&k).cloned()
    }
}

#[tokio::test]
async fn memory_stays_bounded_however_many_senders_appear() {
    let mut r = rig(|c| {
        c.governor.max_tracked_senders = 500;
        c.governor.domain_recipients_per_hour = u32::MAX / 4;
    })
    .await;
    for i in 0..20_000 {
        r.rcpt(&format!("u{i}@agency.example.kz"), "x@far.example")
            .unwrap();
        // Senders idle equally long are evicted in no particular order: u0 is only surely
        // gone if it is older than the 500 kept (a millisecond per thousand senders keeps
        // the first ones' cells busy for the check below).
        if i % 1_000 == 999 {
            r.clock.advance(1);
        }
    }
    r.clock.advance(1_000);
    r.rcpt("latest@agency.example.kz", "x@far.example").unwrap();
    assert!(r.gov.scopes.len() > 20_000);
    // Cells still remember the last minute: nothing is evicted yet.
    r.gov.evict(r.clock.now_ms());
    assert!(r.gov.scopes.len() > 20_000);
    r.clock.advance(HOUR_MS);
    r.gov.evict(r.clock.now_ms());
    // The 500 most recent senders and the domain stay.
    assert_eq!(r.gov.scopes.len(), 501);
    assert!(r.tracked("s:latest@agency.example.kz").is_some());
    assert!(r.tracked("s:u0@agency.example.kz").is_none());
    assert!(r.steps().is_empty());
}

#[tokio::test]
async fn saved_state_brings_back_cells_throttles_and_the_recipient_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let tune = |c: &mut Config| {
        c.governor.history_hours = 0;
        c.governor.new_recipients_5min = 3;
        c.governor.sender_recipients_per_minute = 5;
    };
    let mut r = rig_in(dir, tune, true).await;
    let s = "clerk@agency.example.kz";
    for i in 0..3 {
        r.rcpt(s, &format!("n{i}@far.example")).unwrap();
    }
    // The fourth never-seen address throttles the sender.
    assert!(r.rcpt(s, "n3@far.example").is_err());
    assert_eq!(
        r.steps(),
        [(format!("sender {s}"), Step::Throttle, "novelty")]
    );
    // Two more to known addresses use up the minute's cap (5).
    r.rcpt(s, "n0@far.example").unwrap();
    r.rcpt(s, "n1@far.example").unwrap();
    assert!(r.rcpt(s, "n2@far.example").is_err());
    r.gov.save(false).await;
    let Rig {
        _dir,
        clock,
        gov,
        rx,
        ..
    } = r;
    drop((gov, rx));
    // A new process on the same data.
    let r = rig_in(_dir, tune, false).await;
    r.clock.set(clock.now_ms() + 1_000);
    assert_eq!(r.gov.data_dir_for_test(), path.join("governor"));
    // The minute's cap is still used up...
    let e = r.rcpt(s, "n0@far.example").unwrap_err();
    assert!(
        e.first_line().contains("recipients/minute"),
        "{}",
        e.first_line()
    );
    // ...and a minute later, known addresses pass and new ones are deferred.
    r.clock.advance(60_000);
    r.rcpt(s, "n1@far.example").unwrap();
    let e = r.rcpt(s, "brand-new@far.example").unwrap_err();
    assert!(
        e.first_line().contains("never wrote to"),
        "{}",
        e.first_line()
    );
    let t = r.tracked(&format!("s:{s}")).unwrap();
    assert!(t.throttled_until_ms > r.clock.now_ms());
    assert_eq!(t.ladder.history.len(), 1);
}

/// Feeds the governor one result of `sender`'s recorded as text, typed at
/// that edge as the replay does.
fn observe_one(
    g: &Governor,
    sender: &str,
    delivered: bool,
    permanent: bool,
    text: &str,
    first: bool,
) {
    let outcome = parse_record(delivered, permanent, text);
    let r = outcomes::Result {
        outcome: &outcome,
        first,
    };
    g.observe(sender, Some("agency.example.kz"), true, &[r]);
}

#[tokio::test]
async fn deferrals_and_retries_count_once_and_listings_blame_nobody() {
    let mut r = rig(|_| {}).await;
    r.gov.note_source_address("203.0.113.5".parse().unwrap());
    let s = "a@agency.example.kz";
    // Greylisted first, delivered at the retry: one outcome, no refusal.
    let grey = "450 4.2.0 <x@y>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/y.html";
    observe_one(&r.gov, s, false, false, grey, true);
    observe_one(&r.gov, s, true, false, "250 2.0.0 ok", false);
    // Our own give-up after the lifetime is not a refusal either.
    observe_one(
        &r.gov,
        s,
        false,
        true,
        "4.4.7 delivery time expired; last error: 451 later",
        false,
    );
    // A listing of the gateway's address.
    let listed = "550 5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).";
    observe_one(&r.gov, s, false, true, listed, true);
    let c = r.tracked(&format!("s:{s}")).unwrap().stats.outcomes.cur;
    assert_eq!((c.outcomes, c.rejected, c.spam), (2, 0, 0));
    assert_eq!(r.gov.counters.gateway_listed.load(Ordering::Relaxed), 1);
    assert!(matches!(r.rx.try_recv(), Ok(Event::GatewayListed { .. })));
    // A real refusal later counts as a refusal, not a second outcome.
    observe_one(
        &r.gov,
        s,
        false,
        true,
        "550 5.1.1 <x@y>: user unknown",
        false,
    );
    let c = r.tracked(&format!("s:{s}")).unwrap().stats.outcomes.cur;
    assert_eq!((c.outcomes, c.rejected, c.unknown), (2, 1, 1));
}

#[tokio::test]
async fn one_senders_unknown_recipients_suspend_the_sender_not_its_domain() {
    let mut r = rig(|c| {
        c.governor.unknown_min = 10;
        c.governor.ladder = vec![Step::Suspend];
    })
    .await;
    let unknown = "550 5.1.1 <x@y>: Recipient address rejected: User unknown";
    let mut steps = Vec::new();
    for i in 0..40u64 {
        r.clock.set(T0 + i * 1_000);
        let text = if i % 3 == 0 { unknown } else { "250 ok" };
        r.gov.observe(
            "bad@agency.example.kz",
            Some("agency.example.kz"),
            true,
            &[outcomes::Result {
                outcome: &parse_record(text.starts_with('2'), text.starts_with('5'), text),
                first: true,
            }],
        );
        // A colleague's ordinary mail meanwhile.
        r.gov.observe(
            "good@agency.example.kz",
            Some("agency.example.kz"),
            true,
            &[outcomes::Result {
                outcome: &parse_record(true, false, "250 ok"),
                first: true,
            }],
        );
        steps.extend(r.steps());
    }
    assert_eq!(
        steps,
        [(
            "sender bad@agency.example.kz".to_string(),
            Step::Suspend,
            "unknown_recipients"
        )]
    );
}

/// Two nodes' governors, each joined to a cluster exchange that the test
/// carries by hand ([`pump`]): no PostgreSQL, no timing.
async fn two_nodes(tune: impl Fn(&mut Config) + Copy) -> (Rig, Rig) {
    let (a, b) = (rig(tune).await, rig(tune).await);
    for r in [&a, &b] {
        let every = std::time::Duration::from_millis(200);
        r.gov.cluster.set(cluster::Cluster::new(every)).unwrap();
    }
    // Both on one clock's time.
    b.clock.set(a.clock.now_ms());
    (a, b)
}

/// What `from` observed since the last pump, taken in by `to` (and its own
/// messages ignored by `from`).
fn pump(from: &Rig, to: &Rig) {
    let c = from.gov.cluster.get().unwrap();
    let obs = c.take();
    for m in cluster::encode(&c.node, 0, &obs, crate::store::PEER_MESSAGE_MAX) {
        from.gov.take_in(c, &m);
        to.gov.take_in(to.gov.cluster.get().unwrap(), &m);
    }
}

/// A never-seen recipient flood of one sender, RCPT by RCPT on `node(i)`;
/// the exchange pumped every `lag` RCPTs (0: never). Returns the RCPTs
/// accepted before the first deferral, and the index of the RCPT whose
/// deferral suspended the sender.
fn flood(nodes: &mut [&mut Rig], lag: usize) -> (usize, Option<usize>) {
    let s = "mallory@agency.example.kz";
    let (mut accepted, mut deferred) = (0, false);
    for i in 0..400 {
        let n = i % nodes.len();
        let ok = nodes[n].rcpt(s, &format!("r{i}@far{i}.example")).is_ok();
        if !ok {
            deferred = true;
        } else if !deferred {
            accepted += 1;
        }
        let suspended = nodes[n]
            .steps()
            .iter()
            .any(|(_, step, _)| *step == Step::Suspend);
        if suspended {
            return (accepted, Some(i));
        }
        if lag > 0 && (i + 1) % lag == 0 && nodes.len() == 2 {
            let (x, y) = nodes.split_at_mut(1);
            pump(x[0], y[0]);
            pump(y[0], x[0]);
        }
    }
    (accepted, None)
}

fn flood_tune(c: &mut Config) {
    c.governor.history_hours = 0;
    c.governor.new_recipients_5min = 10;
    c.governor.new_recipients_hour = 1000;
}

#[tokio::test]
async fn a_flood_split_across_two_nodes_stops_where_one_node_stops_it() {
    let mut one = rig(flood_tune).await;
    let (single_accepted, single_suspended) = flood(&mut [&mut one], 0);
    assert_eq!(single_accepted, 10);
    let single_suspended = single_suspended.expect("one node suspends");

    // Exchanged after every RCPT: exactly the single node's figures.
    let (mut a, mut b) = two_nodes(flood_tune).await;
    let (acc, susp) = flood(&mut [&mut a, &mut b], 1);
    assert_eq!((acc, susp), (single_accepted, Some(single_suspended)));
    // The other node learns of the suspension on its way and does not ask
    // for a second one when the flood goes on there.
    pump(&a, &b);
    pump(&b, &a);
    for (i, r) in [&mut a, &mut b].into_iter().enumerate() {
        let _ = r.rcpt("mallory@agency.example.kz", &format!("late{i}@x.example"));
        assert!(r.steps().is_empty());
    }

    // Exchanged every 6 RCPTs (3 per node): at most one interval's worth more.
    let (mut a, mut b) = two_nodes(flood_tune).await;
    let (acc, susp) = flood(&mut [&mut a, &mut b], 6);
    assert!(
        acc >= single_accepted && acc <= single_accepted + 6,
        "{acc}"
    );
    let susp = susp.expect("suspended across the nodes");
    assert!(susp <= single_suspended + 6, "{susp} vs {single_suspended}");

    // Never exchanged: each node judges half the flood, as before.
    let (mut a, mut b) = two_nodes(flood_tune).await;
    let (acc, _) = flood(&mut [&mut a, &mut b], 0);
    assert_eq!(acc, 2 * single_accepted);
}

#[tokio::test]
async fn rate_cells_are_charged_by_the_other_nodes_traffic() {
    let tune = |c: &mut Config| {
        c.governor.sender_recipients_per_minute = 5;
    };
    let (a, b) = two_nodes(tune).await;
    let s = "clerk@agency.example.kz";
    for i in 0..3 {
        a.rcpt(s, &format!("x{i}@far.example")).unwrap();
    }
    for i in 3..5 {
        b.rcpt(s, &format!("x{i}@far.example")).unwrap();
    }
    pump(&a, &b);
    pump(&b, &a);
    // Five in the minute across the cluster: the sixth is refused on both.
    let e = a.rcpt(s, "x6@far.example").unwrap_err();
    assert!(e.to_string().contains("5 recipients/minute"), "{e}");
    assert!(b.rcpt(s, "x7@far.example").is_err());
    // A minute later the cells are full again.
    a.clock.advance(61_000);
    a.rcpt(s, "x8@far.example").unwrap();
}

#[tokio::test]
async fn the_others_recipients_become_known_and_throttles_are_copied() {
    let (mut a, b) = two_nodes(flood_tune).await;
    let s = "clerk@agency.example.kz";
    for i in 0..10 {
        b.rcpt(s, &format!("friend{i}@far.example")).unwrap();
    }
    pump(&b, &a);
    // A knows B's correspondents: writing to them is no novelty there.
    for i in 0..10 {
        a.rcpt(s, &format!("friend{i}@far.example")).unwrap();
    }
    let t = a.tracked(&format!("s:{s}")).unwrap();
    assert_eq!(
        detector::Novelty::of(&t.stats, None, a.clock.now_ms()).new_5,
        10
    );
    // The allowance is used up cluster-wide: A's first new one throttles.
    assert!(a.rcpt(s, "stranger@far.example").is_err());
    assert_eq!(
        a.steps(),
        [(format!("sender {s}"), Step::Throttle, "novelty")]
    );
    pump(&a, &b);
    let t = b.tracked(&format!("s:{s}")).unwrap();
    assert!(t.throttled_until_ms > b.clock.now_ms(), "throttle copied");
    assert_eq!(t.ladder.history.last().unwrap().step, Step::Throttle);
}
