//! CPU time of processes, from /proc: where a measurement's cores went.

/// Clock ticks per second of /proc's times (`getconf CLK_TCK`; 100 on Linux).
const TICKS: f64 = 100.0;

/// User + system CPU seconds a process has used so far; 0 if it is gone.
pub fn process_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The name may hold spaces: the fields that follow start after its ')'.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / TICKS)
        })
        .unwrap_or(0.0)
}

/// The sum of [`process_seconds`] over every process whose name is `name` (e.g. `postgres`).
pub fn named_seconds(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(process_seconds)
        .sum()
}

/// CPU seconds of named parts, taken at the start of a measurement.
pub struct Meter {
    parts: Vec<(&'static str, Source, f64)>,
}

#[derive(Clone, Copy)]
pub enum Source {
    Pid(u32),
    Named(&'static str),
}

impl Source {
    fn seconds(self) -> f64 {
        match self {
            Self::Pid(pid) => process_seconds(pid),
            Self::Named(name) => named_seconds(name),
        }
    }
}

impl Meter {
    pub fn start(parts: &[(&'static str, Source)]) -> Self {
        Self {
            parts: parts
                .iter()
                .map(|&(label, source)| (label, source, source.seconds()))
                .collect(),
        }
    }

    /// CPU per item of `items` since the start, per part.
    pub fn split(&self, items: usize) -> Split {
        Split(
            self.parts
                .iter()
                .map(|&(label, source, before)| {
                    (
                        label,
                        (source.seconds() - before) * 1e6 / items.max(1) as f64,
                    )
                })
                .collect(),
        )
    }

    /// "receiver 61 µs, RabbitMQ 90 µs": [`Self::split`] as text.
    pub fn per_item(&self, items: usize) -> String {
        self.split(items).to_string()
    }

    /// [`Self::per_item`] to a tenth of a µs, for cheap items.
    pub fn per_item_tenths(&self, items: usize) -> String {
        self.split(items).format(1)
    }
}

/// µs of CPU per item, per part of a measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Split(Vec<(&'static str, f64)>);

impl Split {
    /// Part by part, the median of several measurements of the same parts.
    pub fn median(splits: &[Self]) -> Self {
        let Some(first) = splits.first() else {
            return Self(Vec::new());
        };
        Self(
            first
                .0
                .iter()
                .enumerate()
                .map(|(i, &(label, _))| {
                    let values: Vec<f64> = splits.iter().map(|s| s.0[i].1).collect();
                    (label, super::report::Spread::of(&values).median)
                })
                .collect(),
        )
    }

    fn format(&self, decimals: usize) -> String {
        self.0
            .iter()
            .map(|(label, micros)| format!("{label} {micros:.decimals$} µs"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.format(0))
    }
}

/// Waits (up to 20 s) until RabbitMQ and Postgres are idle — under a tenth of a core for a
/// quarter of a second — so a measurement does not pay for the background work (log segments,
/// checkpoints, vacuum) of the one before. Returns how long it waited.
pub async fn settle() -> std::time::Duration {
    const WINDOW: std::time::Duration = std::time::Duration::from_millis(250);
    let started = std::time::Instant::now();
    let busy = || named_seconds("beam.smp") + named_seconds("postgres");
    let mut before = busy();
    while started.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(WINDOW).await;
        let now = busy();
        if now - before < 0.1 * WINDOW.as_secs_f64() {
            break;
        }
        before = now;
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::Split;

    #[test]
    fn the_median_split_is_taken_part_by_part() {
        let splits = [
            Split(vec![("receiver", 50.0), ("RabbitMQ", 90.0)]),
            Split(vec![("receiver", 70.0), ("RabbitMQ", 80.0)]),
            Split(vec![("receiver", 40.0), ("RabbitMQ", 120.0)]),
        ];
        let median = Split::median(&splits);
        assert_eq!(median.to_string(), "receiver 50 µs, RabbitMQ 90 µs");
        assert_eq!(median.format(1), "receiver 50.0 µs, RabbitMQ 90.0 µs");
    }
}
