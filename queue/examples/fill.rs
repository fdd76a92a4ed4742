//! Fills a queue with N messages for the restart benchmark
//! (bench/queue-restart.sh, issue #20 item 3), and measures the enqueue rate
//! as the queue grows.
//!
//!     cargo run --release -p ugem-queue --example fill -- DIR N [SIZE] [CONCURRENCY]
//!
//! Every message is outbound from sender@agency.example to
//! rcpt@external.example, due now. Prints one line per tenth of N with the
//! enqueue rate over that tenth (msg/s), so the rate at an empty queue and at
//! a full one can be compared.

use std::time::Instant;

use ugem_queue::{Direction, NewEnvelope, Queue, QueueOptions, unix_ms};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("DIR"));
    let n: usize = args.get(2).expect("N").parse().expect("N is a number");
    let size: usize = args.get(3).map_or(5120, |s| s.parse().expect("SIZE"));
    let conc: usize = args.get(4).map_or(50, |s| s.parse().expect("CONCURRENCY"));
    let q = Queue::open(
        &dir,
        QueueOptions {
            min_free_bytes: 0,
            ..QueueOptions::default()
        },
    )
    .expect("queue opens");
    let mut body =
        b"From: sender@agency.example\r\nTo: rcpt@external.example\r\nSubject: fill\r\n\r\n"
            .to_vec();
    while body.len() < size {
        body.extend_from_slice(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n",
        );
    }
    let tenth = (n / 10).max(1);
    let mut done = 0;
    while done < n {
        let chunk = tenth.min(n - done);
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let per = chunk.div_ceil(conc);
        let mut left = chunk;
        for _ in 0..conc {
            let k = per.min(left);
            left -= k;
            let (q, body) = (q.clone(), body.clone());
            tasks.spawn(async move {
                for _ in 0..k {
                    let env = NewEnvelope {
                        sender: "sender@agency.example".into(),
                        recipients: vec!["rcpt@external.example".into()],
                        client_ip: Some("127.0.0.1".parse().unwrap()),
                        helo: "fill".into(),
                        tls: None,
                        domain: Some("agency.example".into()),
                        direction: Direction::Outbound,
                        arrived_at_ms: unix_ms(),
                        size: body.len() as u64,
                    };
                    q.enqueue(env, body.clone()).await.expect("enqueue");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        done += chunk;
        let rate = chunk as f64 / start.elapsed().as_secs_f64();
        println!("queued {done} rate {rate:.0} msg/s");
    }
}
