//! Agents over real HTTP: CRUD, PUT/PATCH versioning, publish, status, duplicate, provision,
//! validation errors and tenant isolation, on SQLite and Postgres.

mod common;

use common::{start, Kind};
use reqwest::Method;
use serde_json::{json, Value};

pub fn agent_body(name: &str) -> Value {
    json!({
        "name": name,
        "persona": {"name": "Aria", "personality": "friendly"},
        "voice": {"provider": "elevenlabs", "voiceId": "EXAVITQu4vr4xnSDxMaL"},
        "llm": {"provider": "openai", "model": "gpt-4o"},
        "transcription": {"provider": "deepgram", "model": "nova-2", "language": "en-US"},
        "systemPromptTemplate": "You are Aria. The customer is {{customer_name}}.",
        "firstMessage": "Hello {{customer_name}}!",
        "firstMessageMode": "assistant_speaks_first"
    })
}

async fn crud_and_versions(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let r = s.post("/v1/agents", agent_body("Aria")).await.expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("agt_"));
    assert_eq!(r.body["status"], "draft");
    assert_eq!(r.body["version"], 1);
    assert!(r.body["publishedVersion"].is_null());
    assert_eq!(r.body["maxDurationSeconds"], 600);
    assert_eq!(r.body["endpointing"]["silenceDurationMs"], 700);
    assert_eq!(r.body["promptVariables"], json!(["customer_name"]));

    let r = s.get(&format!("/v1/agents/{id}")).await.expect(200);
    assert_eq!(r.body["name"], "Aria");
    assert_eq!(r.body["voice"]["voiceId"], "EXAVITQu4vr4xnSDxMaL");

    // PATCH merges nested objects and bumps the version.
    let r = s
        .patch(
            &format!("/v1/agents/{id}"),
            json!({"llm": {"temperature": 0.2}, "maxDurationSeconds": 900}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["llm"]["temperature"], 0.2);
    assert_eq!(r.body["llm"]["model"], "gpt-4o");
    assert_eq!(r.body["maxDurationSeconds"], 900);
    // A no-op PATCH is not a new version.
    let r = s
        .patch(
            &format!("/v1/agents/{id}"),
            json!({"maxDurationSeconds": 900}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["version"], 2);
    // null resets to the default.
    let r = s
        .patch(
            &format!("/v1/agents/{id}"),
            json!({"maxDurationSeconds": null}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["version"], 3);
    assert_eq!(r.body["maxDurationSeconds"], 600);

    // PUT replaces everything (omitted optional fields return to defaults).
    let mut full = agent_body("Aria 2");
    full["tags"] = json!(["support", "tier-1"]);
    let r = s.put(&format!("/v1/agents/{id}"), full).await.expect(200);
    assert_eq!(r.body["version"], 4);
    assert_eq!(r.body["name"], "Aria 2");
    assert_eq!(r.body["tags"], json!(["support", "tier-1"]));

    // Publish, then history.
    let r = s
        .post(
            &format!("/v1/agents/{id}/publish"),
            json!({"notes": "first release"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["publishedVersion"], 4);
    let r = s
        .patch(
            &format!("/v1/agents/{id}"),
            json!({"description": "after publish"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["version"], 5);
    assert_eq!(r.body["publishedVersion"], 4);

    let (versions, pages) = s
        .collect_pages(&format!("/v1/agents/{id}/versions"), 2)
        .await;
    assert_eq!(pages, 3);
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![5, 4, 3, 2, 1]);
    assert_eq!(versions[1]["publishNotes"], "first release");
    assert!(versions[1]["publishedAt"].is_string());
    assert_eq!(versions[0]["changesSummary"], "Updated description");
    assert_eq!(versions[4]["changesSummary"], "Created");
    let r = s
        .get(&format!("/v1/agents/{id}/versions/2"))
        .await
        .expect(200);
    assert_eq!(r.body["config"]["llm"]["temperature"], 0.2);
    assert_eq!(r.body["config"]["name"], "Aria");
    s.get(&format!("/v1/agents/{id}/versions/99"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.get(&format!("/v1/agents/{id}/versions/abc"))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);

    // Activate / deactivate.
    let r = s
        .post(&format!("/v1/agents/{id}/activate"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "active");
    let r = s
        .post(&format!("/v1/agents/{id}/deactivate"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "inactive");

    // Duplicate.
    let r = s
        .post(&format!("/v1/agents/{id}/duplicate"), json!({}))
        .await
        .expect(201);
    let copy = r.body["id"].as_str().unwrap().to_string();
    assert_ne!(copy, id);
    assert_eq!(r.body["name"], "Aria 2 (Copy)");
    assert_eq!(r.body["status"], "inactive");
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["tags"], json!(["support", "tier-1"]));
    let r = s
        .post(
            &format!("/v1/agents/{id}/duplicate"),
            json!({"name": "Named copy"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["name"], "Named copy");

    // Delete.
    s.delete(&format!("/v1/agents/{copy}")).await.expect(204);
    s.get(&format!("/v1/agents/{copy}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.delete(&format!("/v1/agents/{copy}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.get(&format!("/v1/agents/{copy}/versions"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

async fn validation_errors(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let mut b = agent_body("x");
    b["maxDurationSeconds"] = json!(10);
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("maxDurationSeconds"));
    let mut b = agent_body("x");
    b["maxIdleTimeSeconds"] = json!(61);
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("maxIdleTimeSeconds"));
    let mut b = agent_body("x");
    b["llm"]["temperature"] = json!(2.5);
    b["voice"]["stability"] = json!(-1);
    let r = s.post("/v1/agents", b).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("voice.stability"),
    );
    assert_eq!(r.body["details"].as_array().unwrap().len(), 2);
    let mut b = agent_body("x");
    b["name"] = json!("n".repeat(101));
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("name"));
    let mut b = agent_body("x");
    b["voice"]["provider"] = json!("nope");
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("voice.provider"));
    let mut b = agent_body("x");
    b["maxDurationSeconds"] = json!("600");
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("maxDurationSeconds"));
    let mut b = agent_body("x");
    b["maxDurationSeconds"] = json!(600.5);
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("maxDurationSeconds"));
    let mut b = agent_body("x");
    b["llm"]["topK"] = json!(5);
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("llm.topK"));
    let mut b = agent_body("x");
    b["systemPromptTemplate"] = json!("Hello {{name");
    s.post("/v1/agents", b).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("systemPromptTemplate"),
    );
    let mut b = agent_body("x");
    b["endpointing"] = json!({"silenceDurationMs": 2000, "utteranceEndMs": 1000});
    s.post("/v1/agents", b).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("endpointing.utteranceEndMs"),
    );
    let mut b = agent_body("x");
    b["voicemailDetection"] = json!({"enabled": true, "action": "leave_message"});
    s.post("/v1/agents", b).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("voicemailDetection.message"),
    );
    let mut b = agent_body("x");
    b.as_object_mut().unwrap().remove("llm");
    s.post("/v1/agents", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    s.post("/v1/agents", json!({"id": "agt_x"}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("id"));

    let id = s
        .post("/v1/agents", agent_body("ok"))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(&format!("/v1/agents/{id}"), json!({"version": 7}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("version"));
    s.patch(
        &format!("/v1/agents/{id}"),
        json!({"llm": {"maxTokens": 0}}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("llm.maxTokens"));
    s.patch(&format!("/v1/agents/{id}"), json!({"name": null}))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    s.patch(&format!("/v1/agents/{id}"), json!([1]))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    s.post(&format!("/v1/agents/{id}/publish"), json!({"notes": 5}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("notes"));
    // Failed changes leave the version alone.
    assert_eq!(s.get(&format!("/v1/agents/{id}")).await.body["version"], 1);
    s.get("/v1/agents?status=bogus")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("status"));
}

async fn tenancy_and_listing(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let mut ids = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 {
            format!("Sales {i}")
        } else {
            format!("Support {i}")
        };
        ids.push(
            s.post("/v1/agents", agent_body(&name))
                .await
                .expect(201)
                .body["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    s.post(&format!("/v1/agents/{}/activate", ids[0]), json!({}))
        .await
        .expect(200);
    let (all, pages) = s.collect_pages("/v1/agents", 3).await;
    assert_eq!(all.len(), 7);
    assert_eq!(pages, 3);
    let (sales, _) = s.collect_pages("/v1/agents?search=sALEs", 2).await;
    assert_eq!(sales.len(), 4);
    let (active, _) = s.collect_pages("/v1/agents?status=active", 10).await;
    assert_eq!(active.len(), 1);
    let (none, _) = s.collect_pages("/v1/agents?search=%25", 10).await;
    assert_eq!(none.len(), 0, "% is matched literally");

    // Another tenant sees nothing and gets 404 for every route on acme's agent.
    let other = s.tenant_key("globex", &["admin"]).await;
    let r = s
        .send(Method::GET, "/v1/agents", Some(&other), None)
        .await
        .expect(200);
    assert_eq!(r.body["data"], json!([]));
    let id = &ids[0];
    for (m, path, body) in [
        (Method::GET, format!("/v1/agents/{id}"), None),
        (
            Method::PUT,
            format!("/v1/agents/{id}"),
            Some(agent_body("stolen")),
        ),
        (
            Method::PATCH,
            format!("/v1/agents/{id}"),
            Some(json!({"name": "stolen"})),
        ),
        (Method::DELETE, format!("/v1/agents/{id}"), None),
        (
            Method::POST,
            format!("/v1/agents/{id}/activate"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/agents/{id}/publish"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/agents/{id}/duplicate"),
            Some(json!({})),
        ),
        (Method::GET, format!("/v1/agents/{id}/versions"), None),
        (Method::GET, format!("/v1/agents/{id}/versions/1"), None),
    ] {
        s.send(m, &path, Some(&other), body.as_ref())
            .await
            .expect_error(404, "NOT_FOUND", None);
    }
    let r = s.get(&format!("/v1/agents/{id}")).await.expect(200);
    assert_eq!(r.body["version"], 1);
    s.get("/v1/agents/agt_doesnotexist")
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.get("/v1/agents/agt_0000000000000000000000000000000")
        .await
        .expect_error(404, "NOT_FOUND", None);
}

async fn provision(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let r = s
        .post("/v1/agents/provision", json!({"name": "Quick"}))
        .await
        .expect(201);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["publishedVersion"], 1);
    assert_eq!(r.body["voice"]["provider"], "embedded");
    assert_eq!(r.body["llm"]["provider"], "embedded");
    let r = s
        .post(
            "/v1/agents/provision",
            json!({"name": "Quick", "llm": {"provider": "openai", "model": "gpt-4o-mini"}}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["llm"]["model"], "gpt-4o-mini");
    s.post("/v1/agents/provision", json!({}))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    s.post("/v1/agents/provision", json!({"name": "q", "bogus": 1}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("bogus"));
}

both_backends!(
    crud_and_versions,
    validation_errors,
    tenancy_and_listing,
    provision
);
