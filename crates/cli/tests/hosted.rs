//! The hosted-model path through the real `techpack` binary against a local fake of the OpenAI
//! API: one in-flight limit per process however many jobs it runs, and a key the upstream
//! echoes never printed or stored, its job failed at once as a configuration error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use techpack_model::{JobState, LOCAL_USER_ID};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

mod support;

use support::*;

/// Answers like the world's fake after `delay`, recording when each request arrived.
struct Recorder {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    delay: Duration,
    answer: ResponseTemplate,
}

impl Respond for Recorder {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        self.answer.clone().set_delay(self.delay)
    }
}

/// The most requests that were in flight at once, each taking `delay` from its arrival.
fn max_in_flight(arrivals: &[Instant], delay: Duration) -> usize {
    let window = delay.mul_f64(0.9);
    arrivals
        .iter()
        .map(|&t| {
            arrivals
                .iter()
                .filter(|&&s| s <= t && t.duration_since(s) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_running_two_jobs_keeps_one_in_flight_limit() {
    let delay = Duration::from_millis(400);
    let world = World::new(false, delay).await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    for (route, answer) in [
        ("/v1/chat/completions", chat_answer()),
        ("/v1/images/edits", images_answer()),
    ] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(Recorder {
                arrivals: arrivals.clone(),
                delay,
                answer,
            })
            .with_priority(1)
            .mount(&world.server)
            .await;
    }
    // Two jobs whose packs could each have two requests in flight: four at once without a
    // limit per process.
    let users = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    for (user, product) in users.iter().zip(["limit-a", "limit-b"]) {
        let output = world.run(&[
            "--user",
            &user.to_string(),
            "generate",
            "--product",
            product,
            "--view",
            &format!("front={}", world.photo.display()),
            "--closeups",
            "2",
            "--provider",
            "openai",
            "--concurrency",
            "2",
            "--detach",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let worker = world
        .command(&[
            "worker",
            "--concurrency",
            "2",
            "--exit-when-idle",
            "--poll-secs",
            "0.2",
        ])
        .env("TECHPACK_OPENAI_CONCURRENCY", "2")
        .env("TECHPACK_OPENAI_REQUESTS_PER_MINUTE", "6000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&worker.stderr);
    assert!(worker.status.success(), "{stderr}");
    assert!(
        stderr.contains("at most 2 request(s) in flight and 6000 per minute in this process"),
        "the worker says its limits: {stderr}"
    );
    let store = world.store().await;
    for (user, product) in users.iter().zip(["limit-a", "limit-b"]) {
        assert_finished_exactly_once(store.as_ref(), *user, product).await;
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2 * STEPS);
    assert_eq!(
        max_in_flight(&arrivals, delay),
        2,
        "two jobs, one limit of 2 for the process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_echoed_upstream_is_never_shown_or_stored_and_fails_the_job_at_once() {
    let world = World::new(false, Duration::ZERO).await;
    // The world's key is `sk-test`; the service quotes it back, as OpenAI's 401 does.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {
                "message": "Incorrect API key provided: sk-test. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": null,
                "code": "invalid_api_key"
            }
        })))
        .with_priority(1)
        .mount(&world.server)
        .await;
    let args = world.generate_args(LOCAL_USER_ID, "refused", &[]);
    let output = world
        .command(&strs(&args))
        .env("TECHPACK_OPENAI_MAX_RETRIES", "3")
        .env("TECHPACK_LOG", "debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a configuration error: {stderr}"
    );
    assert!(
        !stdout.contains("sk-test") && !stderr.contains("sk-test"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("Incorrect API key provided: ***"),
        "{stderr}"
    );
    assert_eq!(
        world.server.received_requests().await.unwrap().len(),
        1,
        "a refused key is asked once: the analysis, and its dependents are not attempted"
    );

    let store = world.store().await;
    let job = only_job(store.as_ref(), LOCAL_USER_ID).await;
    assert_eq!(job.state, JobState::Failed, "not re-queued: {job:#?}");
    assert_eq!(job.attempts, 1);
    assert_eq!(job.error_code.as_deref(), Some("config_error"));
    let stored = format!("{job:?}");
    assert!(!stored.contains("sk-test"), "{stored}");
    for row in product_rows(store.as_ref(), LOCAL_USER_ID, "refused").await {
        let stored = format!("{row:?}");
        assert!(!stored.contains("sk-test"), "{stored}");
    }

    let shown = world.run(&["jobs", "show", &job.id.to_string()]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&shown.stdout),
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(!shown.contains("sk-test"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_makes_a_complete_pack_from_a_server_without_an_images_api() {
    let world = World::new(false, Duration::ZERO).await;
    // Like Ollama and vLLM: no images API.
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .respond_with(ResponseTemplate::new(404).set_body_string("404 page not found"))
        .with_priority(1)
        .mount(&world.server)
        .await;
    let mut args = world.generate_args(LOCAL_USER_ID, "hybrid", &[]);
    let provider = args.iter().position(|arg| arg == "openai").unwrap();
    args[provider] = "hybrid".into();
    let output = world
        .command(&strs(&args))
        // A self-hosted server needs no key.
        .env_remove("TECHPACK_OPENAI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = world.store().await;
    assert_finished_exactly_once(store.as_ref(), LOCAL_USER_ID, "hybrid").await;
    let requests = world.server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "the analysis only");
    assert_eq!(requests[0].url.path(), "/v1/chat/completions");
    assert!(requests[0].headers.get("authorization").is_none());
}
