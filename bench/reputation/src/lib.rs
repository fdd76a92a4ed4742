//! Synthetic traffic for the governor replay (`ugem governor replay`): the
//! profiles of the reputation issue, generated lazily in time order, and the
//! judgement of a replay against each profile's target.
//!
//! Time is the gateway's clock; "office hours" are 09:00-18:00 on weekdays
//! of that clock. Every profile is deterministic for a seed.

use std::collections::{BTreeMap, BinaryHeap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ugem::governor::replay::{Report, TraceEvent};
use ugem::model::domains::SenderLimits;

/// Monday 2026-03-02 00:00 UTC: every trace starts here.
pub const MONDAY: u64 = 1_772_409_600_000;
/// Milliseconds.
pub const SEC: u64 = 1_000;
/// Milliseconds in a minute.
pub const MIN: u64 = 60 * SEC;
/// Milliseconds in an hour.
pub const HOUR: u64 = 60 * MIN;
/// Milliseconds in a day.
pub const DAY: u64 = 24 * HOUR;
/// Milliseconds in a week.
pub const WEEK: u64 = 7 * DAY;

/// The gateway's own address in every trace.
pub const GATEWAY_IP: &str = "203.0.113.25";

/// When a compromise starts: Tuesday of the second week, 10:00.
pub const COMPROMISE: u64 = MONDAY + WEEK + DAY + 10 * HOUR;

const FREEMAIL: &[&str] = &[
    "mail.ru",
    "gmail.com",
    "yandex.ru",
    "outlook.com",
    "yahoo.com",
    "inbox.kz",
    "bk.ru",
    "list.ru",
    "hotmail.com",
    "icloud.com",
];

/// What a profile expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nobody may be suspended.
    NoSuspension,
    /// `bad` must be suspended within `within_ms` of the compromise, before
    /// `max_recipients` of its recipients are accepted after it starts.
    Caught {
        /// Time allowed.
        within_ms: u64,
        /// Recipients allowed.
        max_recipients: u64,
    },
}

/// A generated profile.
pub struct Profile {
    /// Its name.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// The events, lazily, in time order.
    pub events: Box<dyn Iterator<Item = TraceEvent>>,
    /// The compromised sender, if any.
    pub bad: Option<String>,
    /// Its target.
    pub expect: Expect,
    /// How long it runs.
    pub span_ms: u64,
}

/// Every profile's name, in report order.
pub const PROFILES: &[&str] = &[
    "office",
    "burst_takeover",
    "bcc_takeover",
    "slow_compromise",
    "boundary_takeover",
    "tax_office_declared",
    "tax_office_undeclared",
    "notification_service",
    "day_night_sender",
    "unknown_30",
    "unknown_2",
    "greylisted_35",
    "gateway_listed",
    "office_invitations",
];

/// A source of events in time order.
type Source = Box<dyn Iterator<Item = TraceEvent>>;

/// Merges sources by time (ties: the order of the sources).
struct Merge {
    heads: BinaryHeap<std::cmp::Reverse<(u64, usize, u64)>>,
    sources: Vec<Source>,
    pending: Vec<Option<TraceEvent>>,
    seq: u64,
}

impl Merge {
    fn new(mut sources: Vec<Source>) -> Merge {
        let mut heads = BinaryHeap::new();
        let mut pending = Vec::new();
        let mut seq = 0;
        for (i, s) in sources.iter_mut().enumerate() {
            let ev = s.next();
            if let Some(e) = &ev {
                heads.push(std::cmp::Reverse((e.t(), i, seq)));
                seq += 1;
            }
            pending.push(ev);
        }
        Merge {
            heads,
            sources,
            pending,
            seq,
        }
    }
}

impl Iterator for Merge {
    type Item = TraceEvent;
    fn next(&mut self) -> Option<TraceEvent> {
        let std::cmp::Reverse((_, i, _)) = self.heads.pop()?;
        let ev = self.pending[i].take();
        let nx = self.sources[i].next();
        if let Some(e) = &nx {
            self.heads.push(std::cmp::Reverse((e.t(), i, self.seq)));
            self.seq += 1;
        }
        self.pending[i] = nx;
        ev
    }
}

fn once(evs: Vec<TraceEvent>) -> Source {
    Box::new(evs.into_iter())
}

fn in_office_hours(t: u64) -> bool {
    let day = ((t - MONDAY) / DAY) % 7;
    let hour = (t % DAY) / HOUR;
    day < 5 && (9..18).contains(&hour)
}

/// The next office-hours moment at or after `t`.
fn next_office(t: u64) -> u64 {
    let mut t = t;
    while !in_office_hours(t) {
        t = (t / HOUR + 1) * HOUR + 9 * MIN % HOUR;
    }
    t
}

fn exp(rng: &mut StdRng, mean_ms: f64) -> u64 {
    let u: f64 = rng.random_range(1e-9..1.0);
    (-u.ln() * mean_ms).max(1.0) as u64
}

fn stranger(rng: &mut StdRng, tag: &str) -> String {
    let n: u64 = rng.random();
    let d = if rng.random_bool(0.7) {
        FREEMAIL[rng.random_range(0..FREEMAIL.len())].to_string()
    } else {
        format!("d{}.example", rng.random_range(0..5_000))
    };
    format!("{tag}{n:x}@{d}")
}

/// An office: `clerks` mailboxes, each about one message a minute in office
/// hours to its 25 regular correspondents, and now and then (5 % of
/// recipients) to an address it never wrote to.
fn office(domain: &str, clerks: usize, seed: u64, end: u64, greylist: f64) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for c in 0..clerks {
        let mut rng = StdRng::seed_from_u64(seed ^ (c as u64 * 7919));
        let from = format!("clerk{c:02}@{domain}");
        let corr: Vec<String> = (0..25)
            .map(|i| {
                if i < 15 {
                    format!(
                        "staff{}@agency{}.gov.kz",
                        rng.random_range(0..200),
                        rng.random_range(0..40)
                    )
                } else {
                    stranger(&mut rng, "c")
                }
            })
            .collect();
        let mut t = next_office(MONDAY + exp(&mut rng, 60_000.0));
        out.push(Box::new(std::iter::from_fn(move || {
            if t >= end {
                return None;
            }
            let now = t;
            t = next_office(t + exp(&mut rng, 60_000.0));
            let n = match rng.random_range(0..100) {
                0..75 => 1,
                75..90 => 2,
                _ => 3,
            };
            let mut to = Vec::with_capacity(n);
            let mut replies = BTreeMap::new();
            for _ in 0..n {
                let r = if rng.random_bool(0.05) {
                    stranger(&mut rng, "n")
                } else {
                    corr[rng.random_range(0..corr.len())].clone()
                };
                if greylist > 0.0 && rng.random_bool(greylist) {
                    replies.insert(
                        r.clone(),
                        vec![
                            format!("450 4.2.0 <{r}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/{}.html", r.rsplit('@').next().unwrap_or("")),
                            "250 2.0.0 Ok: queued as 4F2A1".to_string(),
                        ],
                    );
                }
                to.push(r);
            }
            Some(TraceEvent::Message {
                t: now,
                from: from.clone(),
                to,
                replies,
                ip: None,
            })
        })));
    }
    out
}

fn domain(t: u64, d: &str, server: &str) -> TraceEvent {
    TraceEvent::Domain {
        t,
        domain: d.into(),
        servers: vec![server.into()],
    }
}

/// A sender at `rate_per_hour(t)` (0: silent), one recipient each, drawn
/// from a population of `base` addresses (uniformly: repeats grow with time).
#[allow(clippy::too_many_arguments)]
fn bulk(
    from: &str,
    seed: u64,
    start: u64,
    end: u64,
    rate_per_hour: impl Fn(u64) -> f64 + 'static,
    base: u64,
    reply: impl Fn(&mut StdRng, &str) -> Option<Vec<String>> + 'static,
) -> Source {
    let mut rng = StdRng::seed_from_u64(seed);
    let from = from.to_string();
    let dom = from.rsplit('@').next().unwrap_or("x").replace('.', "");
    let mut t = start;
    Box::new(std::iter::from_fn(move || {
        loop {
            if t >= end {
                return None;
            }
            let r = rate_per_hour(t);
            if r <= 0.0 {
                t = (t / HOUR + 1) * HOUR;
                continue;
            }
            let now = t;
            t += (3_600_000.0 / r) as u64;
            let i = rng.random_range(0..base);
            let d = FREEMAIL[(i % FREEMAIL.len() as u64) as usize];
            let to = format!("{dom}{i}@{d}");
            let mut replies = BTreeMap::new();
            if let Some(rep) = reply(&mut rng, &to) {
                replies.insert(to.clone(), rep);
            }
            return Some(TraceEvent::Message {
                t: now,
                from: from.clone(),
                to: vec![to],
                replies,
                ip: None,
            });
        }
    }))
}

fn declare(t: u64, sender: &str, per_hour: u32, per_minute: u32, note: &str) -> TraceEvent {
    TraceEvent::SenderLimits {
        t,
        sender: sender.into(),
        limits: SenderLimits {
            messages_per_minute: Some(per_minute),
            messages_per_hour: Some(per_hour),
            recipients_per_minute: Some(per_minute),
            recipients_per_hour: Some(per_hour),
            note: Some(note.into()),
        },
    }
}

/// A compromise marked at `start`: `from` writes one message to one never-seen address
/// every `every` for `span`.
fn trickle(from: &str, start: u64, span: u64, every: u64, seed: u64, tag: &'static str) -> Source {
    let mut rng = StdRng::seed_from_u64(seed);
    let sender = from.to_owned();
    let mut t = start;
    let end = start + span;
    Box::new(
        std::iter::once(mark(start, from)).chain(std::iter::from_fn(move || {
            if t >= end {
                return None;
            }
            let now = t;
            t += every;
            Some(TraceEvent::Message {
                t: now,
                from: sender.clone(),
                to: vec![stranger(&mut rng, tag)],
                replies: BTreeMap::new(),
                ip: None,
            })
        })),
    )
}

fn mark(t: u64, sender: &str) -> TraceEvent {
    TraceEvent::Mark {
        t,
        label: "compromise".into(),
        sender: Some(sender.into()),
    }
}

/// Builds a profile. `weeks` is the length of the ordinary traffic.
pub fn build(name: &str, seed: u64) -> Profile {
    let two = MONDAY + 2 * WEEK;
    let office_dom = "office.gov.kz";
    let bad = format!("clerk07@{office_dom}");
    let setup = vec![
        TraceEvent::Gateway {
            t: MONDAY,
            addresses: vec![GATEWAY_IP.parse().expect("address")],
        },
        domain(MONDAY, office_dom, "192.0.2.10"),
    ];
    let with_office = |extra: Vec<Source>, greylist: f64| -> Box<dyn Iterator<Item = TraceEvent>> {
        let mut s = vec![once(setup.clone())];
        s.extend(office(office_dom, 20, seed, two, greylist));
        s.extend(extra);
        Box::new(Merge::new(s))
    };
    match name {
        "office" => Profile {
            name: "office",
            about: "20 clerks, ~1 msg/min each in office hours, regular correspondents",
            events: with_office(Vec::new(), 0.0),
            bad: None,
            expect: Expect::NoSuspension,
            span_ms: 2 * WEEK,
        },
        "burst_takeover" | "bcc_takeover" => {
            let burst = name == "burst_takeover";
            let mut rng = StdRng::seed_from_u64(seed ^ 0xb0b);
            let from = bad.clone();
            let mut t = COMPROMISE;
            let end = COMPROMISE + 30 * MIN;
            let attack: Source = Box::new(std::iter::once(mark(COMPROMISE, &bad)).chain(
                std::iter::from_fn(move || {
                    if t >= end {
                        return None;
                    }
                    let now = t;
                    let n = if burst {
                        t += 200;
                        rng.random_range(1..=5)
                    } else {
                        t += 5 * SEC;
                        50
                    };
                    Some(TraceEvent::Message {
                        t: now,
                        from: from.clone(),
                        to: (0..n).map(|_| stranger(&mut rng, "v")).collect(),
                        replies: BTreeMap::new(),
                        ip: None,
                    })
                }),
            ));
            Profile {
                name: if burst {
                    "burst_takeover"
                } else {
                    "bcc_takeover"
                },
                about: if burst {
                    "a clerk's mailbox sends 5 msg/s to 1-5 never-seen addresses each"
                } else {
                    "a clerk's mailbox sends one message every 5 s to 50 never-seen addresses"
                },
                events: with_office(vec![attack], 0.0),
                bad: Some(bad),
                expect: Expect::Caught {
                    within_ms: 2 * MIN,
                    max_recipients: 200,
                },
                span_ms: 2 * WEEK,
            }
        }
        "slow_compromise" => {
            let attack = trickle(&bad, COMPROMISE, 5 * DAY, 4 * SEC, seed ^ 0x51, "s");
            Profile {
                name: "slow_compromise",
                about: "a clerk's mailbox writes to one never-seen address every 4 s, day and night",
                events: with_office(vec![attack], 0.0),
                bad: Some(bad),
                expect: Expect::Caught {
                    within_ms: HOUR,
                    max_recipients: 900,
                },
                span_ms: 2 * WEEK,
            }
        }
        "boundary_takeover" => {
            // 25 never-seen addresses in the 50 s before 10:00 (with the
            // clerk's own mail, under the floor of 30): the 5-minute and
            // hour buckets complete with them before any rule trips. Judged
            // on the floor all the same, not on a peak the flood taught.
            let start = COMPROMISE - 50 * SEC;
            let attack = trickle(&bad, start, 30 * MIN, 2 * SEC, seed ^ 0xb0d, "b");
            Profile {
                name: "boundary_takeover",
                about: "a clerk's mailbox writes to one never-seen address every 2 s from 09:59:10",
                events: with_office(vec![attack], 0.0),
                bad: Some(bad),
                expect: Expect::Caught {
                    within_ms: 5 * MIN,
                    max_recipients: 60,
                },
                span_ms: 2 * WEEK,
            }
        }
        "tax_office_declared" | "tax_office_undeclared" => {
            let declared = name == "tax_office_declared";
            let from = "notices@tax.gov.kz";
            let mut setup = vec![domain(MONDAY, "tax.gov.kz", "192.0.2.20")];
            if declared {
                setup.push(declare(
                    MONDAY,
                    from,
                    40_000,
                    700,
                    "tax notices, 10/s on weekdays",
                ));
            }
            let weekday_hours = |t: u64| if in_office_hours(t) { 36_000.0 } else { 0.0 };
            let end = if declared { two } else { MONDAY + 2 * DAY };
            Profile {
                name: if declared {
                    "tax_office_declared"
                } else {
                    "tax_office_undeclared"
                },
                about: if declared {
                    "10 msg/s of notices on weekdays 09-18, one new taxpayer each; declared"
                } else {
                    "the same with default limits and no declaration (two days)"
                },
                events: Box::new(Merge::new(vec![
                    once(setup),
                    bulk(
                        from,
                        seed ^ 0x7a,
                        MONDAY,
                        end,
                        weekday_hours,
                        50_000_000,
                        |_, _| None,
                    ),
                ])),
                bad: None,
                expect: Expect::NoSuspension,
                span_ms: end - MONDAY,
            }
        }
        "notification_service" => {
            let from = "noreply@egov.gov.kz";
            Profile {
                name: "notification_service",
                about: "a flat 3,000/h, day and night, to a base of 400,000 citizens; declared",
                events: Box::new(Merge::new(vec![
                    once(vec![
                        domain(MONDAY, "egov.gov.kz", "192.0.2.30"),
                        declare(MONDAY, from, 4_000, 100, "e-government notifications"),
                    ]),
                    bulk(
                        from,
                        seed ^ 0x3000,
                        MONDAY,
                        two,
                        |_| 3_000.0,
                        400_000,
                        |_, _| None,
                    ),
                ])),
                bad: None,
                expect: Expect::NoSuspension,
                span_ms: 2 * WEEK,
            }
        }
        "day_night_sender" => {
            let from = "info@akimat.gov.kz";
            let rate = |t: u64| {
                let day = ((t - MONDAY) / DAY) % 7;
                let hour = (t % DAY) / HOUR;
                if day >= 5 {
                    150.0
                } else if (8..20).contains(&hour) {
                    2_500.0
                } else {
                    300.0
                }
            };
            Profile {
                name: "day_night_sender",
                about: "2,500/h by day, 300/h at night, 150/h at weekends; declared",
                events: Box::new(Merge::new(vec![
                    once(vec![
                        domain(MONDAY, "akimat.gov.kz", "192.0.2.40"),
                        declare(MONDAY, from, 3_000, 100, "akimat notifications"),
                    ]),
                    bulk(from, seed ^ 0x2500, MONDAY, two, rate, 300_000, |_, _| None),
                ])),
                bad: None,
                expect: Expect::NoSuspension,
                span_ms: 2 * WEEK,
            }
        }
        "unknown_30" | "unknown_2" => {
            let bad_share = name == "unknown_30";
            let from = format!("events@{office_dom}");
            let share = if bad_share { 0.30 } else { 0.02 };
            // A mailing to an old list, one message a minute: 30 % of the
            // list no longer exists (or 2 %).
            let src = bulk(
                &from,
                seed ^ 0x404,
                COMPROMISE,
                two,
                |t| if in_office_hours(t) { 60.0 } else { 0.0 },
                5_000,
                move |rng, to| {
                    rng.random_bool(share).then(|| {
                        vec![format!("550 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table")]
                    })
                },
            );
            let mut srcs: Vec<Source> = vec![once(vec![mark(COMPROMISE, &from)]), src];
            srcs.extend(Vec::<Source>::new());
            Profile {
                name: if bad_share { "unknown_30" } else { "unknown_2" },
                about: if bad_share {
                    "one sender mails an old list, 1/min: 30 % of recipients unknown"
                } else {
                    "the same list with 2 % unknown"
                },
                events: with_office(srcs, 0.0),
                bad: bad_share.then_some(from),
                expect: if bad_share {
                    Expect::Caught {
                        within_ms: 3 * HOUR,
                        max_recipients: 200,
                    }
                } else {
                    Expect::NoSuspension
                },
                span_ms: 2 * WEEK,
            }
        }
        "office_invitations" => {
            // Once a week a clerk invites 40 outside addresses it never wrote
            // to (one message), another writes to 25: honest one-offs.
            let mut rng = StdRng::seed_from_u64(seed ^ 0x1417);
            let mut evs = Vec::new();
            for (week, clerk, n) in [(0u64, 3, 40), (0, 11, 25), (1, 5, 40), (1, 14, 25)] {
                let t = MONDAY + week * WEEK + 2 * DAY + 11 * HOUR;
                evs.push(TraceEvent::Message {
                    t,
                    from: format!("clerk{clerk:02}@{office_dom}"),
                    to: (0..n).map(|_| stranger(&mut rng, "inv")).collect(),
                    replies: BTreeMap::new(),
                    ip: None,
                });
            }
            Profile {
                name: "office_invitations",
                about: "the office, plus weekly one-off invitations to 40 and 25 new addresses",
                events: with_office(vec![once(evs)], 0.0),
                bad: None,
                expect: Expect::NoSuspension,
                span_ms: 2 * WEEK,
            }
        }
        "greylisted_35" => Profile {
            name: "greylisted_35",
            about: "the office, 35 % of recipients behind a greylisting server (450 4.2.0)",
            events: with_office(Vec::new(), 0.35),
            bad: None,
            expect: Expect::NoSuspension,
            span_ms: 2 * WEEK,
        },
        "gateway_listed" => {
            // From the second week, Outlook refuses everything from the
            // gateway's address with its block-list wording.
            let from = "info@akimat.gov.kz";
            let rate = |t: u64| if in_office_hours(t) { 600.0 } else { 60.0 };
            Profile {
                name: "gateway_listed",
                about: "a big provider lists the gateway (S3150) in week 2; the office and a notifier keep sending",
                events: with_office(
                    vec![
                        once(vec![
                            domain(MONDAY, "akimat.gov.kz", "192.0.2.40"),
                            declare(MONDAY, from, 1_000, 100, "notifications"),
                        ]),
                        bulk(
                            from,
                            seed ^ 0x1157,
                            MONDAY,
                            two,
                            rate,
                            100_000,
                            move |_, to| {
                                (to.ends_with("@outlook.com") || to.ends_with("@hotmail.com")).then(|| {
                                vec!["550 5.7.1 Unfortunately, messages from [203.0.113.25] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.".to_string()]
                            })
                            },
                        ),
                    ],
                    0.0,
                ),
                bad: None,
                expect: Expect::NoSuspension,
                span_ms: 2 * WEEK,
            }
        }
        other => panic!("no profile {other}"),
    }
}

/// One line of the report.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The profile.
    pub profile: String,
    /// Caught (for compromise profiles).
    pub caught: Option<bool>,
    /// Seconds from the compromise to the suspension.
    pub time_to_suspension_s: Option<f64>,
    /// Recipients of the compromised sender accepted after the compromise started.
    pub recipients_before: Option<u64>,
    /// Suspensions of anybody else, per simulated week.
    pub false_suspensions_per_week: f64,
    /// Who was falsely suspended.
    pub falsely_suspended: Vec<String>,
    /// RCPTs of legitimate senders deferred (rate or novelty).
    pub legit_deferred: u64,
    /// Gateway listing alarms.
    pub listing_alarms: u64,
    /// Whether the target holds.
    pub pass: bool,
    /// Events replayed.
    pub events: u64,
}

/// Judges a replay's report against the profile's target.
pub fn judge(p: &Profile, r: &Report) -> Row {
    let mut row = Row {
        profile: p.name.to_string(),
        listing_alarms: r.gateway_listed,
        events: r.events,
        ..Default::default()
    };
    let weeks = p.span_ms as f64 / WEEK as f64;
    let mut false_n = 0;
    for (s, t) in &r.senders {
        let is_bad = p.bad.as_deref() == Some(s.as_str());
        if !is_bad {
            row.legit_deferred += t.deferred_rate + t.deferred_new;
            if t.suspensions > 0 {
                false_n += t.suspensions;
                row.falsely_suspended.push(format!("sender {s}"));
            }
        }
    }
    for d in r.domains_suspended.keys() {
        false_n += 1;
        row.falsely_suspended.push(format!("domain {d}"));
    }
    row.false_suspensions_per_week = false_n as f64 / weeks.max(1.0 / 7.0);
    let mut ok = false_n == 0;
    if let (
        Some(bad),
        Expect::Caught {
            within_ms,
            max_recipients,
        },
    ) = (&p.bad, p.expect)
    {
        let start = r
            .marks
            .iter()
            .find(|m| m.sender.as_deref() == Some(bad.as_str()));
        let t = r.senders.get(bad);
        let caught = t.and_then(|t| t.first_suspended_ms).zip(start);
        row.caught = Some(caught.is_some());
        if let (Some((at, m)), Some(t)) = (caught, t) {
            let dt = at.saturating_sub(m.t);
            row.time_to_suspension_s = Some(dt as f64 / 1000.0);
            let before = t
                .recipients_at_suspension
                .unwrap_or(0)
                .saturating_sub(m.recipients_before);
            row.recipients_before = Some(before);
            ok &= dt <= within_ms && before < max_recipients;
        } else {
            ok = false;
        }
    }
    row.pass = ok;
    row
}

/// Replays a profile with `cfg` and judges it.
pub async fn run(name: &str, seed: u64, cfg: ugem::config::Config) -> (Row, Report) {
    let p = build(name, seed);
    let Profile { events, .. } = build(name, seed);
    let report = ugem::governor::replay::run(cfg, events, &mut |_| {})
        .await
        .expect("replay");
    (judge(&p, &report), report)
}

/// The report table (Markdown).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| profile | target | caught | time to suspension | recipients before | false suspensions / week | legit RCPTs deferred | listing events (at most 1/min) | events |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1}{} | {} | {} | {} |\n",
            r.profile,
            if r.pass { "met" } else { "**missed**" },
            r.caught.map_or("-".into(), |c| if c {
                "yes".to_string()
            } else {
                "**no**".to_string()
            }),
            r.time_to_suspension_s
                .map_or("-".into(), |s| format!("{s:.0} s")),
            r.recipients_before.map_or("-".into(), |n| n.to_string()),
            r.false_suspensions_per_week,
            if r.falsely_suspended.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.falsely_suspended.join(", "))
            },
            r.legit_deferred,
            r.listing_alarms,
            r.events,
        ));
    }
    s
}
