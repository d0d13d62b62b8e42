//! The HTTP service through a real socket, on SQLite and PostgreSQL: every route's happy path,
//! validation errors and pagination; authentication and isolation; a whole pack through the
//! API with its live events and idempotency; signed downloads; graceful shutdown.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;
use techpack_pipeline::CancellationToken;
use techpack_server::{ServeOptions, ServerConfig};
use uuid::Uuid;

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(super::Db::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(super::Db::Postgres).await;
            })+
        }
    };
}

on_both_backends!(
    files_routes_store_page_version_and_archive,
    collections_and_reports_routes,
    tokens_are_checked_and_users_isolated,
    a_whole_pack_through_the_api,
    signed_links_serve_ranges_and_refuse_forgeries,
    bad_input_gets_a_json_error_with_a_code,
    events_follow_a_job_that_another_machine_runs,
    schemathesis_finds_no_server_error_and_no_response_off_the_document,
);

async fn files_routes_store_page_version_and_archive(db: Db) {
    let server = TestServer::start(db, Auth::Local).await;
    let mut ids = Vec::new();
    for seed in 0..3 {
        let file = server.upload(None, "tee", "front", photo_png(seed)).await;
        assert_eq!(file["status"], "completed");
        assert_eq!(file["mime_type"], "image/png");
        ids.push(file["id"].as_str().unwrap().to_owned());
    }
    // Keyset pagination: two pages of two and one, newest first, no row twice.
    let first = server
        .get_json("/api/v1/files?product=tee&limit=2", None)
        .await;
    assert_eq!(first["files"].as_array().unwrap().len(), 2);
    let cursor = first["next"].as_str().expect("a next cursor");
    let second = server
        .get_json(
            &format!("/api/v1/files?product=tee&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["files"].as_array().unwrap().len(), 1);
    assert!(second["next"].is_null());
    let mut seen: Vec<String> = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["files"].as_array().unwrap())
        .map(|file| file["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    // Another product's filter sees nothing.
    let other = server.get_json("/api/v1/files?product=mug", None).await;
    assert!(other["files"].as_array().unwrap().is_empty());

    // A row without content (the service layer's createTechFile); credits are not the
    // caller's to set.
    let row = server
        .post_json(
            "/api/v1/files",
            None,
            &json!({"product": "tee", "file_type": "sketch", "view_type": "front", "idempotency_key": "row-1"}),
        )
        .await;
    assert_eq!(row.status(), StatusCode::CREATED);
    let row: Value = row.json().await.unwrap();
    assert_eq!(row["status"], "processing");
    assert_eq!(row["credits_used"], 0);
    let again: Value = server
        .post_json(
            "/api/v1/files",
            None,
            &json!({"product": "tee", "file_type": "sketch", "view_type": "front", "idempotency_key": "row-1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["id"], row["id"],
        "the same idempotency key answers the same row"
    );
    let charged = server
        .post_json(
            "/api/v1/files",
            None,
            &json!({"product": "tee", "file_type": "sketch", "credits_used": 100}),
        )
        .await;
    let (code, _) = error_of(charged, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(code, "invalid_input");
    let archived_row = row["id"].as_str().unwrap();
    let response = server
        .post_json(
            &format!("/api/v1/files/{archived_row}/archive"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let id = &ids[0];
    let file = server.get_json(&format!("/api/v1/files/{id}"), None).await;
    assert_eq!(file["id"], id.as_str());
    let failed = server
        .request(Method::PATCH, &format!("/api/v1/files/{id}/status"), None)
        .json(&json!({"status": "failed", "error_message": "blurred"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::OK);
    let failed: Value = failed.json().await.unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_message"], "blurred");

    let changed = server
        .post_json(
            &format!("/api/v1/files/{id}/versions"),
            None,
            &json!({"status": "completed", "change_description": "cropped"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::CREATED);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["change_description"], "cropped");
    let superseded = server
        .post_json(&format!("/api/v1/files/{id}/versions"), None, &json!({}))
        .await;
    let (code, _) = error_of(superseded, StatusCode::CONFLICT).await;
    assert!(!code.is_empty());
    let id = changed["id"].as_str().unwrap().to_owned();
    let id = &id;
    let versions = server
        .get_json(&format!("/api/v1/files/{id}/versions"), None)
        .await;
    assert_eq!(versions["history"].as_array().unwrap().len(), 2);
    assert_eq!(versions["archived"].as_array().unwrap().len(), 1);
    let archived = server
        .post_json(&format!("/api/v1/files/{id}/archive"), None, &json!({}))
        .await;
    assert_eq!(archived.status(), StatusCode::OK);
    let listed = server.get_json("/api/v1/files?product=tee", None).await;
    assert_eq!(
        listed["files"].as_array().unwrap().len(),
        2,
        "archived files leave the list"
    );
    let archived_list = server
        .get_json("/api/v1/files?product=tee&status=archived", None)
        .await;
    assert_eq!(
        archived_list["files"].as_array().unwrap().len(),
        2,
        "the archived photo and the archived sketch row"
    );
    let restored = server
        .post_json(
            &format!("/api/v1/files/{id}/restore"),
            None,
            &json!({"version": 1}),
        )
        .await;
    let status = restored.status();
    let restored: Value = restored.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["version"], 3);
    assert_eq!(restored["lineage_id"], file["lineage_id"]);
    assert_eq!(
        restored["error_message"], "blurred",
        "version 1's content is back"
    );
    let versions = server
        .get_json(&format!("/api/v1/files/{id}/versions"), None)
        .await;
    assert_eq!(versions["history"].as_array().unwrap().len(), 3);
}

async fn collections_and_reports_routes(db: Db) {
    let server = TestServer::start_with(Options {
        // A self-hosted endpoint needs no key, so the process has provider limits to show.
        configure: Box::new(|settings| {
            settings.openai.base_url = Some("http://127.0.0.1:9/v1".into());
            settings.openai.concurrency = Some(3);
        }),
        ..Options::new(db, Auth::Local)
    })
    .await;
    let a = server.upload(None, "bag", "front", photo_png(1)).await;
    let b = server.upload(None, "bag", "back", photo_png(2)).await;
    let created = server
        .post_json(
            "/api/v1/collections",
            None,
            &json!({"product": "bag", "name": "Bag pack", "collection_type": "base_views_set"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let collection: Value = created.json().await.unwrap();
    let id = collection["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/collections/{id}"));
    let added = server
        .post_json(
            &format!("/api/v1/collections/{id}/files"),
            None,
            &json!({"items": [
                {"tech_file_id": b["id"], "display_order": 2, "section": "base_views"},
                {"tech_file_id": a["id"], "display_order": 1, "section": "base_views"},
            ]}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::OK);
    let with_files = server
        .get_json(&format!("/api/v1/collections/{id}"), None)
        .await;
    let items = with_files["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0][1]["id"], a["id"], "display order is kept");
    let progress = server
        .request(
            Method::PUT,
            &format!("/api/v1/collections/{id}/progress"),
            None,
        )
        .json(&json!({"completion_percentage": 50, "status": "in_progress"}))
        .send()
        .await
        .unwrap();
    assert_eq!(progress.status(), StatusCode::OK);
    let recount = server
        .post_json(
            &format!("/api/v1/collections/{id}/credits/recount"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(recount.status(), StatusCode::OK);
    let removed = server
        .post_json(
            &format!("/api/v1/collections/{id}/files/remove"),
            None,
            &json!({"file_ids": [b["id"]]}),
        )
        .await;
    assert_eq!(removed.status(), StatusCode::OK);
    let with_files = server
        .get_json(&format!("/api/v1/collections/{id}"), None)
        .await;
    assert_eq!(with_files["items"].as_array().unwrap().len(), 1);
    let listed = server
        .get_json("/api/v1/collections?product=bag", None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let stats = server.get_json("/api/v1/products/bag/stats", None).await;
    assert_eq!(stats["total_files"], 2, "{stats}");
    let report = server.get_json("/api/v1/report", None).await;
    assert!(report["recent_files"].as_array().is_some(), "{report}");
    let batch = Uuid::new_v4();
    let none = server
        .get_json(&format!("/api/v1/batches/{batch}/files"), None)
        .await;
    assert!(none.as_array().unwrap().is_empty());

    // Operations.
    assert_eq!(server.get("/healthz", None).await.status(), StatusCode::OK);
    let ready = server.get_json("/readyz", None).await;
    assert_eq!(ready["ready"], true);
    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("techpack_http_requests_total"),
        "request counters by route: {metrics}"
    );
    assert!(metrics.contains("route=\"/api/v1/collections/{id}\""));
    assert!(
        metrics.contains("techpack_provider_in_flight_limit 3"),
        "the provider limits of the process: {metrics}"
    );
    let openapi = server.get_json("/openapi.json", None).await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(openapi["paths"]["/api/v1/packs"]["post"].is_object());
    assert!(openapi["components"]["securitySchemes"]["bearer"].is_object());
    let docs = server.get("/docs/", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

async fn tokens_are_checked_and_users_isolated(db: Db) {
    let server = TestServer::start(db, Auth::Tokens).await;
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let alice_token = user_token(alice);
    let bob_token = user_token(bob);

    // Refused tokens, each with its code.
    let now = chrono::Utc::now().timestamp();
    let mut expired = claims(alice);
    expired["exp"] = json!(now - 3600);
    let mut foreign_audience = claims(alice);
    foreign_audience["aud"] = json!("another-app");
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(alice),
        &jsonwebtoken::EncodingKey::from_secret(b"another-project-secret-of-32-characters!"),
    )
    .unwrap();
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims(alice).to_string())
        )
    };
    // Algorithm confusion: an HS256 token whose "secret" is the RSA public key.
    let confused = jsonwebtoken::encode(
        &{
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("test-rsa".into());
            header
        },
        &claims(alice),
        &jsonwebtoken::EncodingKey::from_secret(&std::fs::read(fixture("rsa_public.pem")).unwrap()),
    )
    .unwrap();
    let refused: Vec<(Option<String>, &str)> = vec![
        (None, "missing_token"),
        (Some("not-a-jwt".into()), "invalid_token"),
        (Some(hs256(&expired)), "token_expired"),
        (Some(hs256(&foreign_audience)), "wrong_audience"),
        (Some(wrong_key), "invalid_token"),
        (Some(unsigned), "invalid_token"),
        (Some(confused), "invalid_token"),
    ];
    for (token, code) in refused {
        let response = server.get("/api/v1/files", token.as_deref()).await;
        let (actual, message) = error_of(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(actual, code, "{token:?}: {message}");
    }
    // Asymmetric keys from the JWKS work.
    for token in [rs256(&claims(alice)), es256(&claims(alice))] {
        let response = server.get("/api/v1/files", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    // Alice's rows, by every kind of id.
    let file = server
        .upload(Some(&alice_token), "secret-tee", "front", photo_png(3))
        .await;
    let file_id = file["id"].as_str().unwrap().to_owned();
    let collection: Value = server
        .post_json(
            "/api/v1/collections",
            Some(&alice_token),
            &json!({"product": "secret-tee", "name": "Alice's"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let collection_id = collection["id"].as_str().unwrap().to_owned();
    let submitted = server
        .post_json(
            "/api/v1/packs",
            Some(&alice_token),
            &json!({"product": "secret-tee", "views": [{"view": "front", "file_id": file_id}]}),
        )
        .await;
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
    let submitted: Value = submitted.json().await.unwrap();
    let job_id = submitted["job"]["id"].as_str().unwrap().to_owned();

    // Bob gets 404 for each of them, on every route.
    let gets = [
        format!("/api/v1/files/{file_id}"),
        format!("/api/v1/files/{file_id}/versions"),
        format!("/api/v1/files/{file_id}/content"),
        format!("/api/v1/files/{file_id}/content-url"),
        format!("/api/v1/collections/{collection_id}"),
        format!("/api/v1/packs/{collection_id}"),
        format!("/api/v1/jobs/{job_id}"),
        format!("/api/v1/jobs/{job_id}/events"),
    ];
    for path in &gets {
        let response = server.get(path, Some(&bob_token)).await;
        let (code, _) = error_of(response, StatusCode::NOT_FOUND).await;
        assert_eq!(code, "not_found", "{path}");
    }
    let posts = [
        (format!("/api/v1/files/{file_id}/archive"), json!({})),
        (
            format!("/api/v1/files/{file_id}/restore"),
            json!({"version": 1}),
        ),
        (format!("/api/v1/jobs/{job_id}/cancel"), json!({})),
        (
            format!("/api/v1/collections/{collection_id}/files"),
            json!({"items": [{"tech_file_id": file_id}]}),
        ),
        (
            format!("/api/v1/packs/{collection_id}/retry-failed"),
            json!({}),
        ),
        (
            "/api/v1/packs".to_owned(),
            json!({"product": "x", "views": [{"view": "front", "file_id": file_id}]}),
        ),
    ];
    for (path, body) in &posts {
        let response = server.post_json(path, Some(&bob_token), body).await;
        let (code, _) = error_of(response, StatusCode::NOT_FOUND).await;
        assert_eq!(code, "not_found", "{path}");
    }
    let patch = server
        .request(
            Method::PATCH,
            &format!("/api/v1/files/{file_id}/status"),
            Some(&bob_token),
        )
        .json(&json!({"status": "failed"}))
        .send()
        .await
        .unwrap();
    error_of(patch, StatusCode::NOT_FOUND).await;
    // Lists never show Alice's rows to Bob.
    for path in [
        "/api/v1/files",
        "/api/v1/collections",
        "/api/v1/jobs",
        "/api/v1/packs",
    ] {
        let body = server.get_json(path, Some(&bob_token)).await;
        let rows = body.get("files").unwrap_or(&body);
        assert!(rows.as_array().unwrap().is_empty(), "{path}: {body}");
    }
    let report = server.get_json("/api/v1/report", Some(&bob_token)).await;
    assert!(report["recent_files"].as_array().unwrap().is_empty());

    // The service role sees every user's rows.
    let service = service_token();
    let all = server.get_json("/api/v1/files", Some(&service)).await;
    assert!(
        all["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["id"] == file_id.as_str())
    );
    let job = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(&service))
        .await;
    assert_eq!(job["user_id"], alice.to_string());
    let report = server.get_json("/api/v1/report", Some(&service)).await;
    assert!(!report["recent_files"].as_array().unwrap().is_empty());
    // The service role names the user it acts for.
    let response = server
        .post_json(
            "/api/v1/collections",
            Some(&service),
            &json!({"product": "p", "name": "for nobody"}),
        )
        .await;
    let (code, _) = error_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(code, "invalid_input");
}

async fn a_whole_pack_through_the_api(db: Db) {
    let server = TestServer::start(db, Auth::Local).await;
    let form = || {
        reqwest::multipart::Form::new()
            .text("product", "api-tee")
            .text("category", "apparel")
            .text("closeups_per_view", "1")
            .part(
                "front",
                reqwest::multipart::Part::bytes(photo_png(4))
                    .file_name("front.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
            .part(
                "back",
                reqwest::multipart::Part::bytes(photo_png(5))
                    .file_name("back.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
    };
    let response = server
        .request(Method::POST, "/api/v1/packs", None)
        .header("idempotency-key", "pack-1")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let submitted: Value = response.json().await.unwrap();
    let job_id = submitted["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/jobs/{job_id}"));
    assert_eq!(submitted["joined"], false);

    // The events, in order, until the result.
    let events = server
        .get(submitted["events"].as_str().unwrap(), None)
        .await;
    assert_eq!(events.status(), StatusCode::OK);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = tokio::time::timeout(Duration::from_secs(120), events.text())
        .await
        .expect("the stream ends with the job")
        .unwrap();
    let events = parse_events(&text);
    let result = check_pack_events(&events, &text);
    // Reconnecting after the last event gets only the result again.
    let last_id = events
        .iter()
        .filter_map(|(_, id, _)| id.clone())
        .next_back()
        .unwrap();
    let resumed = server
        .request(Method::GET, submitted["events"].as_str().unwrap(), None)
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resumed = parse_events(&resumed);
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].0, "result");
    // Reconnecting in the middle gets the rest, in order.
    let middle = events
        .iter()
        .filter_map(|(_, id, _)| id.clone())
        .nth(3)
        .unwrap();
    let rest = server
        .request(Method::GET, submitted["events"].as_str().unwrap(), None)
        .header("last-event-id", &middle)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rest = parse_events(&rest);
    let after: Vec<&(String, Option<String>, Value)> = events
        .iter()
        .skip_while(|(_, id, _)| id.as_deref() != Some(middle.as_str()))
        .skip(1)
        .collect();
    assert_eq!(rest.iter().collect::<Vec<_>>(), after);
    let (status, _) = {
        let response = server
            .request(Method::GET, submitted["events"].as_str().unwrap(), None)
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap();
        error_of(response, StatusCode::BAD_REQUEST).await
    };
    assert_eq!(status, "invalid_input");

    // The pack is readable.
    let collection_id = result["collection_id"].as_str().unwrap();
    let pack = server
        .get_json(&format!("/api/v1/packs/{collection_id}"), None)
        .await;
    let files: Vec<&Value> = pack["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item[1])
        .collect();
    for file_type in ["base_view", "closeup", "sketch", "complete_pack"] {
        assert!(
            files.iter().any(|file| file["file_type"] == file_type),
            "a {file_type} in {pack}"
        );
    }
    let packs = server.get_json("/api/v1/packs?product=api-tee", None).await;
    assert_eq!(packs.as_array().unwrap().len(), 1);
    let credits = pack["collection"]["total_credits"].as_i64().unwrap();
    assert!(credits > 0);

    // The same key again: the same job, nothing charged.
    let again = server
        .request(Method::POST, "/api/v1/packs", None)
        .header("idempotency-key", "pack-1")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["job"]["id"], job_id.as_str());
    assert_eq!(again["joined"], true);
    let pack = server
        .get_json(&format!("/api/v1/packs/{collection_id}"), None)
        .await;
    assert_eq!(
        pack["collection"]["total_credits"].as_i64().unwrap(),
        credits
    );
    let jobs = server.get_json("/api/v1/jobs?product=api-tee", None).await;
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "one job for the two requests"
    );

    // The metrics show the job, its steps' files and their credits from the database.
    let metrics = server.get("/metrics", None).await.text().await.unwrap();
    let value = |line_start: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(line_start))
            .unwrap_or_else(|| panic!("{line_start} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(value("techpack_jobs{state=\"succeeded\"}"), 1.0);
    assert_eq!(value("techpack_jobs{state=\"queued\"}"), 0.0);
    assert_eq!(
        value("techpack_files_last_24h{file_type=\"closeup\",status=\"completed\"}"),
        2.0
    );
    assert_eq!(value("techpack_credits_last_7d"), credits as f64);
}

async fn signed_links_serve_ranges_and_refuse_forgeries(db: Db) {
    let server = TestServer::start(db, Auth::Local).await;
    let bytes = photo_png(6);
    let file = server.upload(None, "cap", "front", bytes.clone()).await;
    let id = file["id"].as_str().unwrap();
    let redirect = server
        .get(&format!("/api/v1/files/{id}/content"), None)
        .await;
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let link = redirect.headers()["location"].to_str().unwrap().to_owned();
    let whole = server.get(&link, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "image/png");
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(whole.bytes().await.unwrap().to_vec(), bytes);
    let part = server
        .request(Method::GET, &link, None)
        .header("range", "bytes=8-15")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 8-15/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[8..16].to_vec());
    let cached = server
        .request(Method::GET, &link, None)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let outside = server
        .request(Method::GET, &link, None)
        .header("range", format!("bytes={}-", bytes.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Tampered: one character of the signature changed.
    let mut tampered = link.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (code, _) = error_of(server.get(&tampered, None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(code, "invalid_link");
    // Expired, and signed by another server's secret.
    let owner: Uuid = file["user_id"].as_str().unwrap().parse().unwrap();
    let key = file["file_url"].as_str().unwrap();
    let signer = techpack_blobs::UrlSigner::new(
        techpack_blobs::SigningSecret::new(URL_SECRET.as_bytes().to_vec()).unwrap(),
    );
    let past = chrono::Utc::now() - chrono::Duration::seconds(5);
    let expired = signer.sign(key, owner, past).unwrap();
    let (code, _) = error_of(
        server.get(&format!("/blobs/{expired}"), None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(code, "link_expired");
    let foreign = techpack_blobs::UrlSigner::new(
        techpack_blobs::SigningSecret::new(b"another-server-secret-of-32-bytes-long".to_vec())
            .unwrap(),
    )
    .sign(
        key,
        owner,
        chrono::Utc::now() + chrono::Duration::minutes(5),
    )
    .unwrap();
    let (code, _) = error_of(
        server.get(&format!("/blobs/{foreign}"), None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(code, "invalid_link");
    // The JSON form of the link works the same.
    let link = server
        .get_json(&format!("/api/v1/files/{id}/content-url"), None)
        .await;
    let again = server.get(link["url"].as_str().unwrap(), None).await;
    assert_eq!(again.status(), StatusCode::OK);
}

async fn bad_input_gets_a_json_error_with_a_code(db: Db) {
    let server = TestServer::start_with(Options {
        configure: Box::new(|settings| settings.server.max_body_bytes = 64 * 1024),
        ..Options::new(db, Auth::Local)
    })
    .await;
    let cases: Vec<(Method, &str, Option<Value>, StatusCode, &str)> = vec![
        (
            Method::GET,
            "/api/v1/files/not-a-uuid",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/files?limit=0",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/files?cursor=nonsense",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/files?colour=red",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/jobs?state=sleeping",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/nothing",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/files",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/api/v1/packs",
            Some(json!({"product": "", "views": []})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/packs",
            Some(
                json!({"product": "tee", "views": [{"view": "front", "file_id": Uuid::new_v4()}]}),
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/packs",
            Some(json!({"product": "tee", "views": [], "colour": "red"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/collections",
            Some(json!({"product": "tee", "name": "  "})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        // NUL characters, which PostgreSQL's text and jsonb cannot hold: refused by field on
        // both backends rather than a server error on one.
        (
            Method::POST,
            "/api/v1/files",
            Some(
                json!({"product": "tee", "file_type": "base_view", "metadata": {"note": "a\u{0}b"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/files",
            Some(json!({"product": "tee", "file_type": "base_view", "view_type": "front\u{0}"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/collections",
            Some(json!({"product": "tee", "name": "spring\u{0}"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let mut request = server.request(method.clone(), path, None);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (actual, message) = error_of(request.send().await.unwrap(), status).await;
        assert_eq!(actual, code, "{method} {path}: {message}");
        assert!(!message.is_empty());
    }
    // A body over the limit is refused before it is read.
    let response = server
        .request(Method::POST, "/api/v1/files/upload?product=tee", None)
        .body(vec![0u8; 128 * 1024])
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(code, "too_large");
    // Not an image: the existing sniffing refuses it and nothing is stored.
    let response = server
        .request(Method::POST, "/api/v1/files/upload?product=tee", None)
        .body(b"MZ\x90\x00 not a product photo".to_vec())
        .send()
        .await
        .unwrap();
    let (code, message) = error_of(response, StatusCode::BAD_REQUEST).await;
    assert!(!code.is_empty(), "{message}");
    let listed = server.get_json("/api/v1/files?product=tee", None).await;
    assert!(listed["files"].as_array().unwrap().is_empty());
    // A server error hides its internals but keeps the request id.
    let id = Uuid::new_v4();
    let response = server.get(&format!("/api/v1/jobs/{id}"), None).await;
    let (code, _) = error_of(response, StatusCode::NOT_FOUND).await;
    assert_eq!(code, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_without_a_key_refuses_to_listen_beyond_loopback() {
    let mut settings = techpack_app::Settings::default();
    settings.server.listen = "0.0.0.0:0".into();
    let error = techpack_server::ServerConfig::from_settings(
        &settings,
        &techpack_server::ServeOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("without authentication"),
        "{error}"
    );
    settings.server.jwt_secret = Some(JWT_SECRET.to_owned().into());
    assert!(
        techpack_server::ServerConfig::from_settings(
            &settings,
            &techpack_server::ServeOptions::default()
        )
        .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_event_streams_and_hands_running_jobs_back() {
    // A pack slow enough to be running at shutdown: many close-ups of a large photo.
    let mut server = TestServer::start_with(Options {
        configure: Box::new(|settings| {
            settings.packs.closeups_per_view = 8;
            settings.packs.concurrency = 1;
        }),
        ..Options::new(Db::Sqlite, Auth::Local)
    })
    .await;
    let views: Vec<(&str, u8)> = vec![("front", 1), ("back", 2), ("side", 3), ("detail", 4)];
    let mut form = reqwest::multipart::Form::new().text("product", "slow-tee");
    for (view, seed) in views {
        form = form.part(
            view,
            reqwest::multipart::Part::bytes(large_photo(seed))
                .file_name(format!("{view}.png"))
                .mime_str("image/png")
                .unwrap(),
        );
    }
    let submitted: Value = server
        .request(Method::POST, "/api/v1/packs", None)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = submitted["job"]["id"].as_str().unwrap().to_owned();
    let events = server
        .get(submitted["events"].as_str().unwrap(), None)
        .await;
    assert_eq!(events.status(), StatusCode::OK);
    // Wait until the job runs here.
    let started = std::time::Instant::now();
    loop {
        let job = server
            .get_json(&format!("/api/v1/jobs/{job_id}"), None)
            .await;
        if job["state"] != "queued" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = tokio::time::timeout(Duration::from_secs(60), server.stop()).await;
    assert!(stopped.expect("the server stops").is_ok());
    let text = tokio::time::timeout(Duration::from_secs(10), events.text())
        .await
        .expect("the event stream ends with the server")
        .unwrap();
    assert!(!text.contains("event: result"), "{text}");
    let job = server
        .app
        .store()
        .get_job(techpack_model::Principal::Service, job_id.parse().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(
            job.state,
            techpack_model::JobState::Queued | techpack_model::JobState::Succeeded
        ),
        "the job goes back to the queue (or finished first): {job:?}"
    );
    if job.state == techpack_model::JobState::Queued {
        assert!(job.lease_token.is_none());
    }
}

fn large_photo(seed: u8) -> Vec<u8> {
    use image::{ImageFormat, Rgb, RgbImage};
    let (width, height) = (1600u32, 2000u32);
    let mut image = RgbImage::from_pixel(width, height, Rgb([236, 236, 232]));
    for y in 300..1800 {
        for x in 300..1300 {
            if (500..1100).contains(&x) || y < 800 {
                let noise = ((x * 7 + y * 13) % 23) as u8;
                image.put_pixel(x, y, Rgb([20 + seed + noise, 60 + noise, 140]));
            }
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// Schemathesis (from PyPI, installed by `scripts/test` into a virtualenv it names in
/// `TECHPACK_SCHEMATHESIS`) fuzzes every operation of `/openapi.json` and checks that no
/// request gets a server error and every response matches the document.
async fn schemathesis_finds_no_server_error_and_no_response_off_the_document(db: Db) {
    let schemathesis = std::env::var("TECHPACK_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "TECHPACK_SCHEMATHESIS names no schemathesis executable: run the tests with scripts/test, which installs it into a virtualenv"
        )
    });
    let server = TestServer::start_with(Options {
        workers: 0,
        ..Options::new(db, Auth::Local)
    })
    .await;
    server.upload(None, "fuzzed", "front", photo_png(7)).await;
    let reports = server.dir.path().join("schemathesis");
    let base = server.base.clone();
    let output = tokio::process::Command::new(&schemathesis)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "25",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261201",
            "--no-color",
            "--request-timeout",
            "30",
            "--report-dir",
        ])
        .arg(&reports)
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache folder goes where the test's files go, not into the source tree.
        .current_dir(server.dir.path())
        .output()
        .await
        .unwrap_or_else(|error| panic!("running {schemathesis}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
}

/// Checks a whole pack's event stream: a `state` event first, one `step_started` and one
/// `step_finished` per step with increasing ids and counts that never go back, the run's
/// `started` and `finished`, and a `result` of a succeeded job last. Returns the result.
fn check_pack_events(events: &[(String, Option<String>, Value)], text: &str) -> Value {
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{text}");
    assert!(
        matches!(events[0].2["state"].as_str(), Some("queued" | "running")),
        "{text}"
    );
    let (last, last_id, result) = events.last().expect("events");
    assert_eq!(last, "result", "{text}");
    assert!(last_id.is_none());
    assert_eq!(result["state"], "succeeded", "{result}");
    let recorded: Vec<&(String, Option<String>, Value)> = events
        .iter()
        .filter(|(name, _, _)| !matches!(name.as_str(), "state" | "result"))
        .collect();
    let ids: Vec<i64> = recorded
        .iter()
        .map(|(_, id, data)| {
            let id: i64 = id
                .as_deref()
                .expect("recorded events have ids")
                .parse()
                .unwrap();
            assert_eq!(data["id"], id);
            id
        })
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase: {ids:?}"
    );
    for (name, _, data) in &recorded {
        assert_eq!(data["event"]["event"], name.as_str(), "{data}");
        assert_eq!(data["job_id"], result["id"]);
    }
    assert_eq!(recorded.first().unwrap().0, "started", "{text}");
    assert_eq!(recorded.last().unwrap().0, "finished", "{text}");
    let count = |wanted: &str| {
        recorded
            .iter()
            .filter(|(name, _, _)| name == wanted)
            .count()
    };
    // 2 views: an analysis, a close-up and a sketch each.
    assert_eq!(count("step_finished"), 6, "{text}");
    assert!(
        count("step_started") <= 6 && count("step_started") >= 1,
        "{text}"
    );
    assert_eq!(count("step_failed"), 0, "{text}");
    let done: Vec<u64> = recorded
        .iter()
        .map(|(_, _, data)| data["event"]["counts"]["done"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|pair| pair[0] <= pair[1]), "{done:?}");
    assert_eq!(*done.last().unwrap(), 6);
    let credits: i64 = recorded
        .iter()
        .filter(|(name, _, _)| name == "step_finished")
        .map(|(_, _, data)| data["event"]["credits"].as_i64().unwrap())
        .sum();
    assert_eq!(
        recorded.last().unwrap().2["event"]["counts"]["credits_used"],
        credits
    );
    result.clone()
}

async fn events_follow_a_job_that_another_machine_runs(db: Db) {
    // This server only serves; the job runs on another server (its own pools and, on
    // PostgreSQL, its own LISTEN connection), as a `techpack worker` machine would.
    let mut options = Options::new(db, Auth::Local);
    options.workers = 0;
    let server = TestServer::start_with(options).await;
    let form = reqwest::multipart::Form::new()
        .text("product", "remote-tee")
        .text("category", "apparel")
        .text("closeups_per_view", "1")
        .part(
            "front",
            reqwest::multipart::Part::bytes(photo_png(6))
                .file_name("front.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .part(
            "back",
            reqwest::multipart::Part::bytes(photo_png(7))
                .file_name("back.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let response = server
        .request(Method::POST, "/api/v1/packs", None)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let submitted: Value = response.json().await.unwrap();
    let events = server
        .get(submitted["events"].as_str().unwrap(), None)
        .await;
    assert_eq!(events.status(), StatusCode::OK);
    // The stream is open (and the job queued) before the other machine starts.
    let reading = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(120), events.text())
            .await
            .expect("the stream ends with the job")
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = CancellationToken::new();
    let other = server.beside(1, stop.clone()).await;
    let text = reading.await.unwrap();
    let events = parse_events(&text);
    let queued = &events[0];
    assert_eq!(queued.0, "state", "{text}");
    assert_eq!(queued.2["state"], "queued", "{text}");
    // Then the claim, then the run's events: the same checks as for a local run.
    let running = events
        .iter()
        .position(|(name, _, data)| name == "state" && data["state"] == "running")
        .expect("a state event for the claim");
    let result = check_pack_events(&events[running..], &text);
    assert_eq!(result["state"], "succeeded");
    stop.cancel();
    other.await.unwrap().unwrap();
}

/// Supabase publishes its signing keys at a JWKS URL: the server fetches it when it starts,
/// verifies RS256 and ES256 tokens with it, does not fetch again for every unknown `kid` a
/// forger sends, and refuses to start when the URL does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_checked_against_a_jwks_url() {
    let jwks = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/auth/v1/.well-known/jwks.json"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_raw(
            std::fs::read(fixture("jwks.json")).unwrap(),
            "application/json",
        ))
        .mount(&jwks)
        .await;
    let url = format!("{}/auth/v1/.well-known/jwks.json", jwks.uri());
    let server = TestServer::start_with(Options {
        workers: 0,
        configure: Box::new({
            let url = url.clone();
            move |settings| {
                settings.server.jwt_secret = None;
                settings.server.jwks = Some(url);
            }
        }),
        ..Options::new(Db::Sqlite, Auth::Tokens)
    })
    .await;
    let user = Uuid::new_v4();
    for token in [rs256(&claims(user)), es256(&claims(user))] {
        let response = server.get("/api/v1/files", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // An HS256 token has no key here (no project secret is configured).
    let (code, _) = error_of(
        server.get("/api/v1/files", Some(&user_token(user))).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(code, "invalid_token");
    // A key id the set does not have: refused, without fetching the set again at once.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rotated-away".into());
    let der = std::fs::read(fixture("rsa_private.der")).unwrap();
    let forged = jsonwebtoken::encode(
        &header,
        &claims(user),
        &jsonwebtoken::EncodingKey::from_rsa_der(&der),
    )
    .unwrap();
    for _ in 0..3 {
        let (code, _) = error_of(
            server.get("/api/v1/files", Some(&forged)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(code, "invalid_token");
    }
    assert_eq!(jwks.received_requests().await.unwrap().len(), 1);

    // A JWKS URL that does not answer (a port nobody listens on any more): the server does
    // not start, and says which URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}/auth/v1/.well-known/jwks.json");
    let mut settings = server.app.settings().clone();
    settings.server.jwt_secret = None;
    settings.server.jwks = Some(url.clone());
    let config = ServerConfig::from_settings(&settings, &ServeOptions::default()).unwrap();
    let error = match techpack_server::Server::bind(server.app.clone(), config).await {
        Ok(_) => panic!("a server without its keys started"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains(&url), "{error}");
}
