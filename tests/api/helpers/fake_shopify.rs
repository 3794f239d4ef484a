//! A fake Shopify Admin API: a real HTTP server on 127.0.0.1:0 that answers
//! `bulkOperationRunQuery` and `node(id:)` like Shopify, serves result files (generated on the
//! fly, so a 200,000-line file costs no disk), and records every request.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub shop: String,
    pub token: Option<String>,
    pub query: String,
    pub variables: Value,
}

impl Recorded {
    pub fn is_run(&self) -> bool {
        self.query.contains("bulkOperationRunQuery")
    }
}

/// A canned HTTP answer, served instead of the normal one.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// What an operation's result file holds.
#[derive(Debug, Clone)]
pub enum File {
    Lines(Vec<String>),
    /// `count` customers `c{i}@example.com`, ids from 1, updated at `updated_at`.
    Customers {
        count: usize,
        updated_at: String,
    },
    /// `count` orders, each followed by one line item (a child line with `__parentId`).
    Orders {
        count: usize,
        updated_at: String,
    },
    /// `lines` of the file, then the connection breaks (the first time only).
    BreaksAfter {
        file: Box<File>,
        lines: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub status: String,
    pub error_code: Option<String>,
    pub file: Option<File>,
    pub query: String,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    scripted: VecDeque<Canned>,
    always: Option<Canned>,
    operations: HashMap<String, Operation>,
    /// `bulkOperationRunQuery` for a query containing this word answers this user error code.
    busy: Vec<(String, String)>,
    downloads: usize,
    next_id: u64,
}

/// A std mutex: it is never held across an `.await`.
type Shared = Arc<Mutex<Inner>>;

pub struct FakeShopify {
    pub addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeShopify {
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        inner.lock().unwrap().next_id = 1_000 + u64::from(rand::random::<u16>());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/{shop}/admin/api/{version}/graphql.json", post(graphql))
            .route("/files/{id}", get(file))
            .with_state((inner.clone(), addr));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, inner, task }
    }

    /// `SHOPIFY_ADMIN_URL` for the app.
    pub fn admin_url(&self) -> String {
        format!("http://{}/{{shop}}", self.addr)
    }

    /// An operation Shopify knows; returns its gid.
    pub fn add_operation(
        &self,
        status: &str,
        error_code: Option<&str>,
        file: Option<File>,
    ) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let gid = format!("gid://shopify/BulkOperation/{}", inner.next_id);
        inner.operations.insert(
            gid.clone(),
            Operation {
                status: status.into(),
                error_code: error_code.map(Into::into),
                query: query_for(file.as_ref()).into(),
                file,
            },
        );
        gid
    }

    /// Changes what `node(id:)` says about `gid`.
    pub fn set_operation(&self, gid: &str, status: &str, file: Option<File>) {
        let mut inner = self.inner.lock().unwrap();
        let op = inner.operations.get_mut(gid).expect("a known operation");
        op.status = status.into();
        op.file = file;
    }

    /// Served (in order) before any normal answer.
    pub fn script(&self, canned: Canned) {
        self.inner.lock().unwrap().scripted.push_back(canned);
    }

    /// Served for every GraphQL request from now on.
    pub fn always(&self, canned: Canned) {
        self.inner.lock().unwrap().always = Some(canned);
    }

    /// Bulk queries of `resource` are refused with the user error `code`.
    pub fn busy(&self, resource: &str, code: &str) {
        self.inner
            .lock()
            .unwrap()
            .busy
            .push((resource.into(), code.into()));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn runs(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_run)
            .collect()
    }

    pub fn downloads(&self) -> usize {
        self.inner.lock().unwrap().downloads
    }

    /// The URL of a result file no operation points to (for the importer on its own).
    pub fn file_url(&self, file: File) -> String {
        let gid = self.add_operation("COMPLETED", None, Some(file));
        format!(
            "http://{}/files/{}",
            self.addr,
            gid.rsplit('/').next().unwrap()
        )
    }
}

impl Drop for FakeShopify {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bulk query an operation with this file ran (tells the resource).
fn query_for(file: Option<&File>) -> &'static str {
    match file {
        Some(File::Orders { .. }) => "{ orders { edges { node { id } } } }",
        Some(File::BreaksAfter { file, .. }) => query_for(Some(file)),
        _ => "{ customers { edges { node { id } } } }",
    }
}

fn canned(c: Canned) -> Response {
    let mut response = (StatusCode::from_u16(c.status).unwrap(), c.body).into_response();
    for (name, value) in c.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

async fn graphql(
    State((inner, addr)): State<(Shared, SocketAddr)>,
    Path((shop, _version)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let query = body["query"].as_str().unwrap_or_default().to_owned();
    let variables = body["variables"].clone();
    let mut inner = inner.lock().unwrap();
    inner.requests.push(Recorded {
        shop,
        token: headers
            .get("x-shopify-access-token")
            .and_then(|v| v.to_str().ok())
            .map(Into::into),
        query: query.clone(),
        variables: variables.clone(),
    });
    if let Some(c) = inner.always.clone().or_else(|| inner.scripted.pop_front()) {
        return canned(c);
    }
    let cost = json!({"cost": {"requestedQueryCost": 10, "actualQueryCost": 10,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}});
    if query.contains("bulkOperationRunQuery") {
        let bulk_query = variables["query"].as_str().unwrap_or_default().to_owned();
        if let Some((_, code)) = inner
            .busy
            .iter()
            .find(|(r, _)| bulk_query.contains(r.as_str()))
        {
            let answer = json!({"data": {"bulkOperationRunQuery": {"bulkOperation": null,
                "userErrors": [{"field": ["query"], "message": "A bulk query operation for this app and shop is already in progress.", "code": code}]}},
                "extensions": cost});
            return Json(answer).into_response();
        }
        inner.next_id += 1;
        let gid = format!("gid://shopify/BulkOperation/{}", inner.next_id);
        inner.operations.insert(
            gid.clone(),
            Operation {
                status: "RUNNING".into(),
                error_code: None,
                file: None,
                query: bulk_query,
            },
        );
        let answer = json!({"data": {"bulkOperationRunQuery": {
            "bulkOperation": {"id": gid, "status": "CREATED"}, "userErrors": []}},
            "extensions": cost});
        return Json(answer).into_response();
    }
    let id = variables["id"].as_str().unwrap_or_default();
    let node = inner.operations.get(id).map(|op| {
        let url = match (&op.file, op.status.as_str()) {
            (Some(_), "COMPLETED") => Value::String(format!(
                "http://{addr}/files/{}",
                id.rsplit('/').next().unwrap()
            )),
            _ => Value::Null,
        };
        json!({"id": id, "status": op.status, "errorCode": op.error_code, "url": url,
               "partialDataUrl": null, "objectCount": "0", "createdAt": "2026-01-01T00:00:00Z",
               "completedAt": null, "query": op.query})
    });
    Json(json!({"data": {"node": node}, "extensions": cost})).into_response()
}

async fn file(State((inner, _)): State<(Shared, SocketAddr)>, Path(id): Path<String>) -> Response {
    let gid = format!("gid://shopify/BulkOperation/{id}");
    let mut guard = inner.lock().unwrap();
    guard.downloads += 1;
    let Some(op) = guard.operations.get_mut(&gid) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (file, breaks_after) = match op.file.clone() {
        Some(File::BreaksAfter { file, lines }) => {
            op.file = Some(*file.clone());
            (*file, Some(lines))
        }
        Some(file) => (file, None),
        None => return StatusCode::NOT_FOUND.into_response(),
    };
    drop(guard);
    Body::from_stream(chunks(file, breaks_after)).into_response()
}

/// The file in chunks of 200 lines; an error ends the body early (a broken connection).
fn chunks(
    file: File,
    breaks_after: Option<usize>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> + Send {
    let total = match &file {
        File::Lines(lines) => lines.len(),
        File::Customers { count, .. } => *count,
        File::Orders { count, .. } => *count * 2,
        File::BreaksAfter { .. } => 0,
    };
    let limit = breaks_after.unwrap_or(total).min(total);
    futures::stream::unfold(0usize, move |at| {
        let file = file.clone();
        async move {
            if at >= limit {
                return match (breaks_after, at < total) {
                    (Some(_), true) if at == limit => {
                        // Let what was sent reach the client first: a break mid-body, not a
                        // failed request.
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        Some((Err(std::io::Error::other("cut")), at + 1))
                    }
                    _ => None,
                };
            }
            let end = (at + 200).min(limit);
            let text: String = (at..end).map(|i| line(&file, i) + "\n").collect();
            Some((Ok::<_, std::io::Error>(text), end))
        }
    })
}

fn line(file: &File, i: usize) -> String {
    match file {
        File::Lines(lines) => lines[i].clone(),
        File::Customers { updated_at, .. } => {
            let id = i + 1;
            format!(
                r#"{{"id":"gid:\/\/shopify\/Customer\/{id}","firstName":"First{id}","lastName":null,"state":"ENABLED","createdAt":"2026-01-01T00:00:00Z","updatedAt":"{updated_at}","defaultEmailAddress":{{"emailAddress":"c{id}@example.com"}},"defaultPhoneNumber":null}}"#
            )
        }
        File::Orders { updated_at, .. } => {
            let id = i / 2 + 1;
            if i % 2 == 1 {
                return format!(
                    r#"{{"id":"gid://shopify/LineItem/{id}","title":"Item","__parentId":"gid://shopify/Order/{id}"}}"#
                );
            }
            format!(
                r##"{{"id":"gid://shopify/Order/{id}","name":"#{id}","email":"o{id}@example.com","createdAt":"2026-01-01T00:00:00Z","updatedAt":"{updated_at}","cancelledAt":null,"displayFinancialStatus":"PAID","displayFulfillmentStatus":"PARTIALLY_FULFILLED","currencyCode":"EUR","totalPriceSet":{{"shopMoney":{{"amount":"{id}.95","currencyCode":"EUR"}}}},"customer":{{"id":"gid://shopify/Customer/{id}"}}}}"##
            )
        }
        File::BreaksAfter { file, .. } => line(file, i),
    }
}

impl Canned {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: String::new(),
        }
    }

    pub fn too_many_requests(retry_after: &str) -> Self {
        Self {
            status: 429,
            headers: vec![("retry-after", retry_after.into())],
            body: r#"{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}"#.into(),
        }
    }

    /// A 200 with GraphQL `THROTTLED` and a cost saying the bucket is nearly empty.
    pub fn throttled() -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 5, "restoreRate": 100.0}}}})
            .to_string(),
        }
    }
}
