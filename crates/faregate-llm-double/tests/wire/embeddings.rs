//! `POST /v1/embeddings`.

use base64::Engine as _;
use faregate_llm_double::Options;
use serde_json::json;

use crate::client::Double;

#[tokio::test]
async fn floats_by_default_and_base64_on_request() {
    let double = Double::start(Options::default()).await;
    let floats = double
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": "hello world"}),
        )
        .await
        .json();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "e");
    assert_eq!(floats["data"][0]["object"], "embedding");
    assert_eq!(floats["data"][0]["index"], 0);
    let vector: Vec<f32> =
        serde_json::from_value(floats["data"][0]["embedding"].clone()).expect("floats");
    assert_eq!(vector.len(), 8);
    assert_eq!(
        floats["usage"],
        json!({"prompt_tokens": 2, "total_tokens": 2})
    );
    let body = json!({"model": "e", "input": "hello world", "encoding_format": "base64"});
    let encoded = double.post("/embeddings", &body).await.json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            encoded["data"][0]["embedding"]
                .as_str()
                .expect("base64 string"),
        )
        .expect("valid base64");
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    assert_eq!(decoded, vector);
}

#[tokio::test]
async fn batches_token_arrays_and_dimensions() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "e", "input": ["a b", "c"], "dimensions": 3});
    let v = double.post("/v1/embeddings", &body).await.json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let tokens = double
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": [[1, 2, 3], [4]]}),
        )
        .await
        .json();
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    let one = double
        .post("/v1/embeddings", &json!({"model": "e", "input": [7, 8]}))
        .await
        .json();
    assert_eq!(one["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["usage"]["total_tokens"], 2);
    let bad = double
        .post("/v1/embeddings", &json!({"model": "e", "input": [1, "x"]}))
        .await;
    assert_eq!(bad.status, 400);
}
