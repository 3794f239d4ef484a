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

/// The median, smallest and largest of several rounds' figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Of `values`; the median of an even count is the mean of the middle two. All 0 when empty.
    pub fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Self {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[]).median, 0.0);
    }
}
