//! The Admin client on its own against the fake: what it waits out and what it reports.

use secrecy::SecretString;
use shopify_sync::shopify::{
    ShopDomain,
    admin::{AdminClient, AdminError, CUSTOMERS_QUERY, RetryPolicy},
};

use super::TOKEN;
use crate::helpers::{Canned, FakeShopify};

fn client(fake: &FakeShopify) -> AdminClient {
    AdminClient::new(&fake.admin_url(), "2026-10")
}

fn shop() -> ShopDomain {
    ShopDomain::parse("client-shop.myshopify.com").unwrap()
}

#[tokio::test]
async fn a_throttled_query_is_retried_after_the_cost_bucket_refills() {
    let fake = FakeShopify::start().await;
    fake.script(Canned::throttled());

    let operation = client(&fake)
        .run_bulk_query(&shop(), &SecretString::from(TOKEN), CUSTOMERS_QUERY)
        .await
        .unwrap();

    assert!(operation.id.starts_with("gid://shopify/BulkOperation/"));
    assert_eq!(fake.runs().len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_reported_as_transient() {
    let fake = FakeShopify::start().await;
    fake.script(Canned::status(502));
    let ok = client(&fake)
        .run_bulk_query(&shop(), &SecretString::from(TOKEN), CUSTOMERS_QUERY)
        .await;
    assert!(ok.is_ok(), "{ok:?}");

    fake.always(Canned::status(503));
    let policy = RetryPolicy {
        attempts: 3,
        throttle_waits: 0,
    };
    let error = client(&fake)
        .with_policy(policy)
        .run_bulk_query(&shop(), &SecretString::from(TOKEN), CUSTOMERS_QUERY)
        .await
        .unwrap_err();

    assert!(
        matches!(error, AdminError::Status { status: 503, .. }),
        "{error}"
    );
    assert!(error.is_transient());
    assert_eq!(fake.requests().len(), 2 + 3);
}

#[tokio::test]
async fn user_errors_come_back_with_their_code() {
    let fake = FakeShopify::start().await;
    fake.busy("customers", "LIMIT_REACHED");

    let error = client(&fake)
        .run_bulk_query(&shop(), &SecretString::from(TOKEN), CUSTOMERS_QUERY)
        .await
        .unwrap_err();

    assert_eq!(error.user_error_code(), Some("LIMIT_REACHED"));
    assert!(!error.is_transient());
}
