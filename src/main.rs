use std::process::ExitCode;

use clap::Parser;
use shopify_sync::{cli::Cli, commands, settings::Settings, telemetry};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("shopify-sync: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format);

    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime starts");
    let code = runtime.block_on(async {
        let cancel = CancellationToken::new();
        tokio::spawn(stop_on_signal(cancel.clone()));
        commands::run(cli.command, settings, cancel).await
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("shopify-sync: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM: stop accepting work, finish what is in flight, exit 0.
async fn stop_on_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stopping: finishing in-flight work");
    cancel.cancel();
}
