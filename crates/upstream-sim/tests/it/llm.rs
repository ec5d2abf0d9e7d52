use std::time::{Duration, Instant};

use serde_json::{Value, json};
use service::Secret;
use upstream_sim::{LlmConfig, SimConfig, condense};

use crate::{http, json, start, start_with};

const LONG: &str = "El cliente reporta que la conexión de fibra se cae todas las noches \
    alrededor de las ocho. El router fue reemplazado la semana pasada pero el problema \
    continúa. Los técnicos midieron la señal en el gabinete de la calle y estaba en rango. \
    El cliente pide un descuento en la factura mensual por las interrupciones.";

async fn complete(base: &str, body: Value) -> (u16, Value) {
    json(
        http()
            .post(format!("{base}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("sent"),
    )
    .await
}

fn user(text: &str) -> Value {
    json!({"model": "gpt-test", "messages": [
        {"role": "system", "content": "Resume el texto."},
        {"role": "user", "content": text},
    ]})
}

#[tokio::test]
async fn the_openai_form_answers_the_condensed_last_user_message() {
    let sim = start().await;
    let (status, body) = complete(&sim.url(), user(LONG)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-test");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert!(body["created"].as_i64().is_some_and(|t| t > 1_600_000_000));
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], condense(LONG));
    let usage = &body["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_u64().expect("n"),
        usage["completion_tokens"].as_u64().expect("n"),
    );
    assert!(p > c && c > 0, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(p + c));
    sim.stop().await;
}

#[tokio::test]
async fn the_simple_form_accepts_a_message_or_a_prompt() {
    let sim = start().await;
    for key in ["message", "prompt"] {
        let (status, body) = json(
            http()
                .post(format!("{}/chat", sim.url()))
                .json(&json!({ key: LONG }))
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response"], condense(LONG));
    }
    let (status, body) = json(
        http()
            .post(format!("{}/chat", sim.url()))
            .json(&json!({"text": "hola"}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("message")));
    let stats = sim.llm().stats();
    assert_eq!(stats.routes["chat"].requests, 3);
    assert_eq!(stats.routes["chat_completions"].requests, 0);
    sim.stop().await;
}

#[tokio::test]
async fn condensation_is_deterministic_and_shorter_than_its_input() {
    let sim = start().await;
    let (_, first) = complete(&sim.url(), user(LONG)).await;
    let (_, second) = complete(&sim.url(), user(LONG)).await;
    let answer = first["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert_eq!(second["choices"][0]["message"]["content"], answer.as_str());
    let (input, output) = (LONG.chars().count(), answer.chars().count());
    assert!(
        output < input && output <= input / 4 + 1,
        "{output} of {input}: {answer}"
    );
    assert!(answer.starts_with("El cliente reporta"), "{answer}");
    sim.stop().await;
}

#[tokio::test]
async fn five_concurrent_slow_requests_are_five_in_flight_at_once() {
    let sim = start().await;
    sim.llm().set_latency(Duration::from_millis(700));
    let requests: Vec<_> = (0..5)
        .map(|i| {
            let url = sim.url();
            tokio::spawn(async move {
                let route = if i % 2 == 0 {
                    "/chat"
                } else {
                    "/v1/chat/completions"
                };
                let body = if i % 2 == 0 {
                    json!({"message": "hola"})
                } else {
                    user("hola")
                };
                http()
                    .post(format!("{url}{route}"))
                    .json(&body)
                    .send()
                    .await
                    .expect("sent")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.expect("joined"), 200);
    }
    let stats = sim.llm().stats();
    assert_eq!(stats.total.requests, 5);
    assert_eq!(stats.total.max_in_flight, 5, "{stats:?}");
    assert_eq!(stats.total.in_flight, 0);
    assert_eq!(stats.routes["chat"].max_in_flight, 3);
    assert_eq!(stats.routes["chat_completions"].max_in_flight, 2);
    // The same over HTTP, then a reset.
    let (_, served) = json(
        http()
            .get(format!("{}/_sim/llm/stats", sim.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(served["total"]["max_in_flight"], 5);
    sim.llm().reset_stats();
    let stats = sim.llm().stats();
    assert_eq!((stats.total.requests, stats.total.max_in_flight), (0, 0));
    sim.stop().await;
}

#[tokio::test]
async fn fail_next_fails_exactly_the_next_requests() {
    let sim = start().await;
    sim.llm().fail_next(2);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = complete(&sim.url(), user("hola")).await;
        if status != 200 {
            assert_eq!(body["error"]["type"], "server_error", "{body}");
        }
        statuses.push(status);
    }
    assert!(
        statuses[..2].iter().all(|s| [500, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses[2], 200);
    assert_eq!(sim.llm().stats().total.errors, 2);
    sim.stop().await;
}

#[tokio::test]
async fn an_error_rate_of_one_fails_every_request_with_a_server_error() {
    let sim = start().await;
    sim.llm().set_error_rate(1.0);
    for _ in 0..10 {
        let (status, _) = complete(&sim.url(), user("hola")).await;
        assert!([500, 503].contains(&status), "{status}");
    }
    sim.llm().set_error_rate(0.0);
    assert_eq!(complete(&sim.url(), user("hola")).await.0, 200);
    sim.stop().await;
}

#[tokio::test]
async fn the_empty_answer_knob_answers_empty_content() {
    let sim = start().await;
    sim.llm().set_empty_answer(true);
    let (status, body) = complete(&sim.url(), user(LONG)).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], "");
    sim.stop().await;
}

#[tokio::test]
async fn a_hung_request_ends_when_the_client_times_out() {
    let sim = start().await;
    sim.llm().set_hang(true);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("a client");
    let started = Instant::now();
    let err = client
        .post(format!("{}/chat", sim.url()))
        .json(&json!({"message": "hola"}))
        .send()
        .await
        .expect_err("it hangs");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server notices the client left and stops counting the request.
    let deadline = Instant::now() + Duration::from_secs(3);
    while sim.llm().stats().total.in_flight > 0 {
        assert!(
            Instant::now() < deadline,
            "the hung request is still in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.llm().stats().total.max_in_flight, 1);
    sim.stop().await;
}

#[tokio::test]
async fn a_configured_api_key_is_required_as_a_bearer_token() {
    let sim = start_with(SimConfig {
        llm: LlmConfig {
            api_key: Some(Secret::new("sk-sim")),
            ..LlmConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    for auth in [None, Some("Bearer nope"), Some("sk-sim")] {
        let mut request = http().post(&url).json(&user("hola"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, body) = json(request.send().await.expect("sent")).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].is_string());
    }
    let (status, body) = json(
        http()
            .post(&url)
            .bearer_auth("sk-sim")
            .json(&json!({"messages": [{"role": "user", "content": "hola"}]}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], upstream_sim::llm::DEFAULT_MODEL);
    sim.stop().await;
}

#[tokio::test]
async fn knobs_change_over_http_and_an_unknown_knob_is_refused() {
    let sim = start().await;
    let knobs = format!("{}/_sim/llm/knobs", sim.url());
    let (status, body) = json(
        http()
            .post(&knobs)
            .json(&json!({"latency_ms": 20, "fail_next": 1}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["latency_ms"].as_u64(), body["hang"].as_bool()),
        (Some(20), Some(false))
    );
    assert_eq!(sim.llm().knobs().faults.latency, Duration::from_millis(20));
    assert_ne!(complete(&sim.url(), user("hola")).await.0, 200);
    assert_eq!(complete(&sim.url(), user("hola")).await.0, 200);
    for bad in [
        json!({"latncy_ms": 5}),
        json!({"error_rate": 2.0}),
        json!([1]),
    ] {
        let (status, body) = json(http().post(&knobs).json(&bad).send().await.expect("sent")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].is_string());
    }
    sim.stop().await;
}
