//! `POST /v1/reload`: reads the config again from where it came from.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AdminState;
use crate::problem::{Code, Problem};

pub(super) async fn reload(State(s): State<AdminState>) -> Result<Response, Problem> {
    let Some(reload) = &s.reload else {
        return Err(Problem::new(
            Code::ReloadUnavailable,
            "this gateway was not started from a config file",
        ));
    };
    match reload() {
        Ok(()) => Ok(Json(json!({"reloaded": true})).into_response()),
        Err(e) => Err(Problem::new(Code::InvalidConfig, e)),
    }
}
