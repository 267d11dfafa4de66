//! `POST /v1/embeddings`: deterministic vectors seeded by the SHA-256 of each
//! input, as JSON floats or as base64 of little-endian `f32`s (what the
//! openai Python SDK asks for by default).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::answer::{Answer, Ctx};
use crate::fields;
use crate::problem::Problem;
use crate::reply::SplitMix;
use crate::tokenize::count_tokens;

/// Vector length when the request sets no `dimensions`.
const DEFAULT_DIMENSIONS: u64 = 8;
/// The longest vector the double makes.
const MAX_DIMENSIONS: u64 = 4096;

/// One input to embed.
enum Input<'a> {
    Text(&'a str),
    Tokens(Vec<u64>),
}

impl Input<'_> {
    fn tokens(&self) -> u64 {
        match self {
            Self::Text(text) => count_tokens(text),
            Self::Tokens(ids) => u64::try_from(ids.len()).unwrap_or(u64::MAX),
        }
    }

    fn seed(&self) -> Vec<u8> {
        match self {
            Self::Text(text) => text.as_bytes().to_vec(),
            Self::Tokens(ids) => ids.iter().flat_map(|id| id.to_le_bytes()).collect(),
        }
    }
}

pub(crate) fn answer(body: &Value, _ctx: &Ctx) -> Result<Answer, Problem> {
    let model = fields::model(body)?;
    let inputs = inputs(body.get("input"))?;
    let dimensions = fields::count(body, "dimensions")?.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(Problem::bad(format!(
            "dimensions: must be from 1 to {MAX_DIMENSIONS}"
        )));
    }
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(v) if v == "float" => false,
        Some(v) if v == "base64" => true,
        Some(_) => {
            return Err(Problem::bad(
                "encoding_format: expected 'float' or 'base64'",
            ));
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = vector(&input.seed(), dimensions);
            let embedding = if base64 {
                encoded(&vector)
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(Input::tokens).sum();
    Ok(Answer::json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    })))
}

/// `input`: a string, strings, one token array or token arrays.
fn inputs(input: Option<&Value>) -> Result<Vec<Input<'_>>, Problem> {
    let shape = || Problem::bad("input: expected a string, an array of strings, or token arrays");
    let items = match input {
        Some(Value::String(text)) => return Ok(vec![Input::Text(text)]),
        Some(Value::Array(items)) if !items.is_empty() => items,
        None | Some(Value::Null) => return Err(Problem::bad("input: field required")),
        Some(_) => return Err(shape()),
    };
    if items.iter().all(Value::is_u64) {
        return Ok(vec![Input::Tokens(
            items.iter().filter_map(Value::as_u64).collect(),
        )]);
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => Ok(Input::Text(text)),
            Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => Ok(
                Input::Tokens(ids.iter().filter_map(Value::as_u64).collect()),
            ),
            _ => Err(shape()),
        })
        .collect()
}

/// `dimensions` values in (-1, 1), built from random bits without float
/// arithmetic: a random sign, an exponent for 1/64 to 1/2 and a random
/// mantissa.
fn vector(seed: &[u8], dimensions: u64) -> Vec<f32> {
    let mut rng = SplitMix::seeded(seed);
    (0..dimensions)
        .map(|_| {
            let bits = rng.next_u64();
            let sign = u32::from(bits & 1 == 1) << 31;
            let exponent = (121 + u32::try_from((bits >> 1) % 5).unwrap_or(0)) << 23;
            let mantissa = u32::try_from((bits >> 8) & 0x7F_FFFF).unwrap_or(0);
            f32::from_bits(sign | exponent | mantissa)
        })
        .collect()
}

/// The vector as base64 of little-endian `f32`s.
fn encoded(vector: &[f32]) -> Value {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_stable_and_in_range() {
        let v = vector(b"hello", 64);
        assert_eq!(v, vector(b"hello", 64));
        assert_ne!(v, vector(b"world", 64));
        assert!(
            v.iter()
                .all(|x| x.is_finite() && x.abs() < 1.0 && x.abs() > 0.0)
        );
    }

    #[test]
    fn inputs_take_the_four_shapes() {
        let count = |v: Value| {
            inputs(Some(&v))
                .map(|i| i.iter().map(Input::tokens).collect::<Vec<_>>())
                .ok()
        };
        assert_eq!(count(json!("a b")), Some(vec![2]));
        assert_eq!(count(json!(["a", "b c"])), Some(vec![1, 2]));
        assert_eq!(count(json!([1, 2, 3])), Some(vec![3]));
        assert_eq!(count(json!([[1, 2], [3]])), Some(vec![2, 1]));
        assert_eq!(count(json!([])), None);
        assert_eq!(count(json!([1, "a"])), None);
        assert_eq!(count(json!({"a": 1})), None);
    }
}
