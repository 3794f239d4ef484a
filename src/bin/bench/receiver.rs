//! The receiver against raw publishing, in rounds.
//!
//! On two cores shared by RabbitMQ, the receiver and the load generator, one measurement of
//! each swings by a quarter from run to run. Each round measures the raw publishes and the
//! receiver back to back, so a round's ratios compare like with like; the report gives the
//! median of the rounds with their range.

use super::{
    Bench, cpu,
    cpu::Split,
    raw::{self, Publish, Published},
    report::{Spread, per_second},
    service::{self, ReceiverRun},
};

struct Round {
    bare: Published,
    consume: f64,
    same: Published,
    receiver: ReceiverRun,
}

impl Round {
    fn published(&self, kind: Publish) -> &Published {
        match kind {
            Publish::Bare => &self.bare,
            Publish::AsTheService => &self.same,
        }
    }
}

/// Measures `rounds` rounds and reports them.
pub async fn compare(bench: &mut Bench) -> anyhow::Result<()> {
    let mut rounds = Vec::new();
    for number in 1..=bench.args.rounds {
        cpu::settle().await;
        let bare = raw::publish_confirm(bench, Publish::Bare).await?;
        let consume = raw::consume_ack(bench).await?;
        cpu::settle().await;
        let same = raw::publish_confirm(bench, Publish::AsTheService).await?;
        service::purge(bench).await?;
        let receiver = service::receiver_load(bench).await?;
        eprintln!(
            "  round {number}: bare publish {:.0}/s, the service's messages {:.0}/s, \
             receiver {:.0}/s ({:.2}× bare, {:.2}× the same messages)",
            bare.rate,
            same.rate,
            receiver.rate,
            receiver.rate / bare.rate,
            receiver.rate / same.rate,
        );
        rounds.push(Round {
            bare,
            consume,
            same,
            receiver,
        });
    }
    report(bench, &rounds);
    Ok(())
}

fn report(bench: &mut Bench, rounds: &[Round]) {
    let of = |f: &dyn Fn(&Round) -> f64| Spread::of(&rounds.iter().map(f).collect::<Vec<_>>());
    let split =
        |f: &dyn Fn(&Round) -> Split| Split::median(&rounds.iter().map(f).collect::<Vec<_>>());
    let n = rounds.len();
    let rate_range = |s: Spread| format!("median of {n} rounds, {:.0}–{:.0}/s", s.min, s.max);
    let ratio_range = |s: Spread| format!("median of {n} rounds, {:.2}–{:.2}×", s.min, s.max);
    let ms = |seconds: f64| format!("{:.1} ms", seconds * 1e3);

    for kind in [Publish::Bare, Publish::AsTheService] {
        let spread = of(&|r| r.published(kind).rate);
        let note = format!("{}; {}", kind.note(bench), rate_range(spread));
        bench
            .report
            .add(kind.label(), per_second(spread.median), &note);
        bench.report.add(
            &format!("{}: CPU per message", kind.label()),
            split(&|r| r.published(kind).cpu.clone()).to_string(),
            "median",
        );
        if kind == Publish::Bare {
            let consume = of(&|r| r.consume);
            let note = format!(
                "prefetch {}; {}",
                bench.settings.prefetch,
                rate_range(consume)
            );
            bench.report.add(
                "raw: lapin consume + ack",
                per_second(consume.median),
                &note,
            );
        }
    }

    let accepted = of(&|r| r.receiver.rate);
    let note = format!(
        "{} connections, closed loop; {}",
        bench.args.connections,
        rate_range(accepted)
    );
    bench.report.add(
        "receiver: accepted webhooks",
        per_second(accepted.median),
        &note,
    );
    let bare = of(&|r| r.receiver.rate / r.bare.rate);
    bench.report.add(
        "receiver / raw publish-confirm, bare",
        format!("{:.2}×", bare.median),
        &format!("goal ≥ 0.8×; {}", ratio_range(bare)),
    );
    let same = of(&|r| r.receiver.rate / r.same.rate);
    bench.report.add(
        "receiver / raw publish-confirm, the service's messages",
        format!("{:.2}×", same.median),
        &format!(
            "the same broker work: contract headers, topic exchange; {}",
            ratio_range(same)
        ),
    );
    let p50 = of(&|r| r.receiver.p50.as_secs_f64());
    bench
        .report
        .add("receiver latency p50", ms(p50.median), "median");
    let p99 = of(&|r| r.receiver.p99.as_secs_f64());
    bench.report.add(
        "receiver latency p99",
        ms(p99.median),
        &format!("goal ≤ 25 ms; median, worst round {}", ms(p99.max)),
    );
    let wait = of(&|r| r.receiver.confirm_wait.as_secs_f64());
    bench.report.add(
        "receiver: mean wait for the confirm",
        ms(wait.median),
        "publish to confirm, inside the receiver; median",
    );
    bench.report.add(
        "receiver phase: CPU per webhook",
        split(&|r| r.receiver.cpu.clone()).to_string(),
        "median",
    );
    let idle = of(&|r| r.receiver.rss_idle);
    let peak = of(&|r| r.receiver.rss_peak);
    bench.report.add(
        "receiver RSS idle / peak under load",
        format!("{:.1} / {:.1} MiB", idle.max, peak.max),
        "goal ≤ 32 MiB; largest of the rounds",
    );
}
