//! A fresh, migrated database per test, dropped when the test ends.

use std::str::FromStr;

use deadpool_postgres::Pool;
use shopify_sync::db;

/// Base URL of the test server; each test gets its own database on it.
pub fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDb {
    pub name: String,
    pub config: tokio_postgres::Config,
    pub pool: Pool,
}

impl TestDb {
    /// Creates and migrates a database named `test_<random>`.
    pub async fn new() -> Self {
        let name = super::unique("test");
        let mut config = tokio_postgres::Config::from_str(&base_url()).expect("TEST_DATABASE_URL");
        config.dbname(&name);
        db::create_database_if_missing(&config)
            .await
            .expect("create test database");
        db::migrate(&config).await.expect("migrate test database");
        let pool = db::pool(&config, 8);
        Self { name, config, pool }
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> String {
        let base = base_url();
        let (server, _) = base.rsplit_once('/').expect("URL with a database");
        format!("{server}/{}", self.name)
    }

    pub async fn client(&self) -> deadpool_postgres::Object {
        self.pool.get().await.expect("test database connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        let (name, mut admin) = (self.name.clone(), self.config.clone());
        admin.dbname("postgres");
        super::block_on_cleanup(async move {
            let Ok((client, connection)) = admin.connect(tokio_postgres::NoTls).await else {
                eprintln!("cannot connect to drop test database {name}");
                return;
            };
            tokio::spawn(connection);
            let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(error) = client.batch_execute(&statement).await {
                eprintln!("cannot drop test database {name}: {error}");
            }
        });
    }
}
