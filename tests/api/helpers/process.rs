//! The real binary as a child process, on a test's database and a fresh prefix.

use std::{process::Stdio, time::Duration};

use shopify_sync::{broker::Topology, settings::Settings};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{TestDb, app::test_vars, broker::delete_topology};

/// `shopify-sync <command>` as a child process, on a fresh database and prefix.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    /// The receiver's URL (empty for processes without one).
    pub address: String,
    pub metrics_address: String,
    pub topology: Topology,
    pub prefix: String,
}

impl ServeProcess {
    pub async fn start(db: &TestDb) -> Self {
        Self::start_command("serve", db).await
    }

    pub async fn start_command(command: &str, db: &TestDb) -> Self {
        Self::start_with(command, db, &[]).await
    }

    /// `command` with `overrides` on top of the test settings (e.g. a proxied `AMQP_URL`).
    pub async fn start_with(command: &str, db: &TestDb, overrides: &[(&str, &str)]) -> Self {
        let prefix = crate::helpers::unique("test");
        let mut vars = test_vars(&prefix, &[("LOG_FORMAT", "json")]);
        vars.insert("DATABASE_URL".into(), db.url());
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let topology = Topology::new(&Settings::from_vars(vars.clone()).unwrap());
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopify-sync"))
            .arg(command)
            .env_clear()
            .envs(vars)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // The addresses are in its log lines (it binds port 0); metrics come last.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (address, metrics_address) = tokio::time::timeout(Duration::from_secs(20), async {
            let mut address = String::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let addr = || format!("http://{}", entry["addr"].as_str().unwrap());
                if entry["message"] == "receiver listening" {
                    address = addr();
                } else if entry["message"] == "metrics listening" {
                    return (address, addr());
                }
            }
            panic!("{command} exited before listening");
        })
        .await
        .expect("the process starts");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            address,
            metrics_address,
            topology,
            prefix,
        }
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let topology = self.topology.clone();
        crate::helpers::block_on_cleanup(async move { delete_topology(&topology).await });
    }
}
