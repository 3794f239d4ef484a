//! The table the bench prints.

use super::Bench;

#[derive(Default)]
pub struct Report {
    rows: Vec<(String, String, String)>,
}

impl Report {
    pub fn add(&mut self, measure: &str, value: String, note: &str) {
        eprintln!("  {measure}: {value}");
        self.rows.push((measure.to_owned(), value, note.to_owned()));
    }

    pub fn print(&self, bench: &Bench) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        println!(
            "\nshopify-sync bench: {} webhooks, {} connections, prefetch {}, {:?} queues, pool {}; \
             {cores} cores ({cpu})\n",
            bench.args.webhooks,
            bench.args.connections,
            bench.settings.prefetch,
            bench.settings.queue_type,
            bench.settings.database_pool_size,
        );
        println!("| measure | value | note |\n|---|---|---|");
        for (measure, value, note) in &self.rows {
            println!("| {measure} | {value} | {note} |");
        }
    }
}

pub fn rate(count: usize, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

pub fn per_second(value: f64) -> String {
    format!("{value:.0}/s")
}
