//! `reputation-report [PROFILE...] [--seed N] [--trace PROFILE]`: replays
//! each profile through the governor with the default `[governor]` and prints
//! the report table; `--trace PROFILE` prints that profile's trace as JSON
//! lines instead (input for `ugem governor replay`).

use std::io::Write;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut seed = 1u64;
    if let Some(i) = args.iter().position(|a| a == "--seed") {
        seed = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(1);
        args.drain(i..(i + 2).min(args.len()));
    }
    if let Some(i) = args.iter().position(|a| a == "--trace") {
        let name = args.get(i + 1).cloned().unwrap_or_else(|| "office".into());
        let p = ugem_reputation::build(&name, seed);
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for ev in p.events {
            let _ = writeln!(out, "{}", serde_json::to_string(&ev).unwrap_or_default());
        }
        return;
    }
    let names: Vec<String> = if args.is_empty() {
        ugem_reputation::PROFILES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for n in &names {
        let t0 = std::time::Instant::now();
        let (row, _) = rt.block_on(ugem_reputation::run(
            n,
            seed,
            ugem::config::Config::default(),
        ));
        eprintln!(
            "{n}: {} events in {:.1} s",
            row.events,
            t0.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    print!("{}", ugem_reputation::table(&rows));
}
