//! Agent instances, audience groups and the agent list's `tags` filter over real HTTP, on
//! SQLite and Postgres.

mod common;

use common::{start, Kind, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

async fn make_agent(s: &TestServer, name: &str, tags: Value) -> String {
    s.post("/v1/agents/provision", json!({"name": name, "tags": tags}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn instances_crud(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let agent = make_agent(&s, "Front desk", json!([])).await;
    let base = format!("/v1/agents/{agent}/instances");
    let r = s
        .post(
            &base,
            json!({
                "name": "Main line",
                "channel": "twilio",
                "phoneNumber": "+14155550100",
                "variables": {"company": "Acme", "hours": "9-5"},
                "metadata": {"region": "us"}
            }),
        )
        .await
        .expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("inst_"));
    assert_eq!(r.body["agentId"], agent.as_str());
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["variables"]["company"], "Acme");
    assert!(r.body.get("agentVersion").is_none());

    let r = s.get(&format!("{base}/{id}")).await.expect(200);
    assert_eq!(r.body["phoneNumber"], "+14155550100");

    // PUT replaces whole; pin to version 1 (provisioned agents are at version 1).
    let r = s
        .put(
            &format!("{base}/{id}"),
            json!({"name": "Web widget", "channel": "webrtc", "agentVersion": 1, "enabled": false}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["name"], "Web widget");
    assert_eq!(r.body["agentVersion"], 1);
    assert_eq!(r.body["enabled"], false);
    assert!(r.body.get("phoneNumber").is_none());
    assert_eq!(r.body["variables"], json!({}));

    // Validation errors name their field.
    for (body, field) in [
        (json!({"name": "x", "channel": "twilio"}), "phoneNumber"),
        (
            json!({"name": "x", "channel": "sip", "phoneNumber": "555-0100"}),
            "phoneNumber",
        ),
        (json!({"name": "x", "channel": "fax"}), "channel"),
        (
            json!({"name": "x", "channel": "webrtc", "agentVersion": 7}),
            "agentVersion",
        ),
        (
            json!({"name": "x", "channel": "webrtc", "variables": {"1bad": "v"}}),
            "variables.1bad",
        ),
        (
            json!({"name": "x", "channel": "webrtc", "variables": {"a": 5}}),
            "variables.a",
        ),
        (json!({"name": "", "channel": "webrtc"}), "name"),
        (
            json!({"name": "x", "channel": "webrtc", "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"name": "x", "channel": "webrtc", "extra": true}),
            "extra",
        ),
    ] {
        s.post(&base, body)
            .await
            .expect_error(400, "VALIDATION_ERROR", Some(field));
    }

    // Pagination and isolation.
    for i in 0..4 {
        s.post(
            &base,
            json!({"name": format!("ws {i}"), "channel": "websocket"}),
        )
        .await
        .expect(201);
    }
    let (items, pages) = s.collect_pages(&base, 2).await;
    assert_eq!(items.len(), 5);
    assert_eq!(pages, 3);
    let other = make_agent(&s, "Other", json!([])).await;
    s.get(&format!("/v1/agents/{other}/instances/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    let intruder = s.tenant_key("globex", &["admin"]).await;
    s.send(Method::GET, &base, Some(&intruder), None)
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.send(
        Method::DELETE,
        &format!("{base}/{id}"),
        Some(&intruder),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);

    s.delete(&format!("{base}/{id}")).await.expect(204);
    s.get(&format!("{base}/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.get(&format!("{base}/inst_nope"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

async fn audience_groups_crud(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let contacts: Vec<Value> = (0..30)
        .map(|i| {
            json!({"phoneNumber": format!("+1415555{:04}", 100 + i), "name": format!("C{i}"),
                   "variables": {"first_name": format!("N{i}")}})
        })
        .collect();
    let r = s
        .post(
            "/v1/audience-groups",
            json!({"name": "June leads", "description": "from the fair", "contacts": contacts,
                   "tags": ["fair"]}),
        )
        .await
        .expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("aud_"));
    assert_eq!(r.body["contactCount"], 30);
    assert_eq!(r.body["contacts"].as_array().unwrap().len(), 30);
    assert_eq!(r.body["contacts"][3]["variables"]["first_name"], "N3");

    // Lists carry the count, not the contacts.
    for i in 0..2 {
        s.post("/v1/audience-groups", json!({"name": format!("Group {i}")}))
            .await
            .expect(201);
    }
    let (items, pages) = s.collect_pages("/v1/audience-groups", 2).await;
    assert_eq!(items.len(), 3);
    assert_eq!(pages, 2);
    let june = items.iter().find(|g| g["id"] == id.as_str()).unwrap();
    assert_eq!(june["contactCount"], 30);
    assert!(june.get("contacts").is_none());

    let r = s
        .put(
            &format!("/v1/audience-groups/{id}"),
            json!({"name": "June leads (clean)", "contacts": [{"phoneNumber": "+442071234567"}]}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["contactCount"], 1);
    assert!(r.body["description"].is_null());
    let r = s
        .get(&format!("/v1/audience-groups/{id}"))
        .await
        .expect(200);
    assert_eq!(r.body["name"], "June leads (clean)");
    assert_eq!(r.body["contacts"][0]["phoneNumber"], "+442071234567");

    // Validation.
    s.post(
        "/v1/audience-groups",
        json!({"name": "dup", "contacts": [{"phoneNumber": "+14155550100"}, {"phoneNumber": "+14155550100"}]}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("contacts[1].phoneNumber"));
    s.post(
        "/v1/audience-groups",
        json!({"name": "bad", "contacts": [{"phoneNumber": "0800 123"}]}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("contacts[0].phoneNumber"));
    s.post(
        "/v1/audience-groups",
        json!({"name": "bad", "contacts": [{"phoneNumber": "+14155550100", "email": "x@y"}]}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("contacts[0].email"));
    s.post("/v1/audience-groups", json!({"contacts": []}))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    let too_many: Vec<Value> = (0..5001)
        .map(|i| json!({"phoneNumber": format!("+1415{:07}", i + 1_000_000)}))
        .collect();
    s.post(
        "/v1/audience-groups",
        json!({"name": "huge", "contacts": too_many}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("contacts"));

    // Tenancy and deletion.
    let intruder = s.tenant_key("globex", &["admin"]).await;
    s.send(
        Method::GET,
        &format!("/v1/audience-groups/{id}"),
        Some(&intruder),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    let r = s
        .send(Method::GET, "/v1/audience-groups", Some(&intruder), None)
        .await
        .expect(200);
    assert_eq!(r.body["data"], json!([]));
    s.send(
        Method::PUT,
        &format!("/v1/audience-groups/{id}"),
        Some(&intruder),
        Some(&json!({"name": "mine now"})),
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    s.delete(&format!("/v1/audience-groups/{id}"))
        .await
        .expect(204);
    s.get(&format!("/v1/audience-groups/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

async fn tags_filter(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let a = make_agent(&s, "A", json!(["support", "Tier-1"])).await;
    let b = make_agent(&s, "B", json!(["support"])).await;
    let c = make_agent(&s, "C", json!(["sales", "tier-1"])).await;
    make_agent(&s, "D", json!([])).await;
    let ids = |r: &Value| -> Vec<String> {
        let mut v: Vec<String> = r["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let r = s.get("/v1/agents?tags=support").await.expect(200);
    assert_eq!(ids(&r.body), sorted(vec![a.clone(), b.clone()]));
    // Case-insensitive, every tag required, spaces ignored.
    let r = s.get("/v1/agents?tags=SUPPORT,%20tier-1").await.expect(200);
    assert_eq!(ids(&r.body), vec![a.clone()]);
    let r = s.get("/v1/agents?tags=tier-1").await.expect(200);
    assert_eq!(ids(&r.body), sorted(vec![a.clone(), c.clone()]));
    let r = s.get("/v1/agents?tags=").await.expect(200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 4);
    let r = s.get("/v1/agents?tags=nothing").await.expect(200);
    assert_eq!(r.body["data"], json!([]));
    // Combined with other filters and paginated.
    let r = s
        .get("/v1/agents?tags=support&search=b&status=active")
        .await
        .expect(200);
    assert_eq!(ids(&r.body), vec![b.clone()]);
    let (items, pages) = s.collect_pages("/v1/agents?tags=support", 1).await;
    assert_eq!(items.len(), 2);
    assert_eq!(pages, 2);

    // Updates re-index; another tenant's tags never match.
    s.patch(&format!("/v1/agents/{b}"), json!({"tags": ["sales"]}))
        .await
        .expect(200);
    let r = s.get("/v1/agents?tags=support").await.expect(200);
    assert_eq!(ids(&r.body), vec![a.clone()]);
    let r = s.get("/v1/agents?tags=sales").await.expect(200);
    assert_eq!(ids(&r.body), sorted(vec![b.clone(), c.clone()]));
    let dup = s
        .post(&format!("/v1/agents/{a}/duplicate"), json!({}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.get("/v1/agents?tags=support").await.expect(200);
    assert_eq!(ids(&r.body), sorted(vec![a.clone(), dup.clone()]));
    s.delete(&format!("/v1/agents/{dup}")).await.expect(204);
    let intruder = s.tenant_key("globex", &["admin"]).await;
    let r = s
        .send(
            Method::GET,
            "/v1/agents?tags=support",
            Some(&intruder),
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.body["data"], json!([]));

    // Bad filters are validation errors.
    let many = (0..21)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    s.get(&format!("/v1/agents?tags={many}"))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("tags"));
    s.get(&format!("/v1/agents?tags={}", "x".repeat(51)))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("tags[0]"));

    // 401s carry the rate-limit headers of the anonymous bucket too.
    let r = s
        .send(Method::GET, "/v1/agents", None, None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    assert_eq!(r.header("x-ratelimit-limit"), Some("1000"));
    assert!(r.header("x-ratelimit-remaining").is_some());
    let r = s
        .send(Method::GET, "/v1/agents", Some("plabs_wrong"), None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    assert!(r.header("x-ratelimit-reset").is_some());

    // Agents written before the tag index existed are indexed at the next start.
    sqlx::query("DELETE FROM agent_tags")
        .execute(&s.state.db.pool)
        .await
        .unwrap();
    parley_control::store::agents::backfill_tags(&s.state.db)
        .await
        .unwrap();
    let r = s.get("/v1/agents?tags=tier-1").await.expect(200);
    assert_eq!(ids(&r.body), sorted(vec![a, c]));
}

both_backends!(instances_crud, audience_groups_crud, tags_filter);
