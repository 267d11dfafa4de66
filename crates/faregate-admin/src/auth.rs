//! The admin token check in front of every `/v1` route.
//!
//! Both the presented and the configured token are hashed before the
//! constant-time comparison, so that neither the content nor the length of
//! the token shows in how long a refusal takes.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AdminState;
use crate::problem::{Code, Problem};

/// Middleware: runs the request only with `Authorization: Bearer <token>`.
pub(crate) async fn require_token(
    State(s): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    let expected = s.gw.snapshot().config.admin.token.clone();
    match check(expected.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(problem) => problem.into_response(),
    }
}

fn check(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Problem> {
    // An empty token would let an empty `Bearer ` through: treat it as unset.
    let Some(expected) = expected.filter(|t| !t.is_empty()) else {
        return Err(Problem::new(
            Code::AdminTokenUnset,
            "set [admin] token to use the admin API",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes()));
    if bool::from(same) {
        Ok(())
    } else {
        Err(Problem::new(
            Code::InvalidAdminToken,
            "send Authorization: Bearer <admin token>",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let with = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            h
        };
        assert!(check(Some("s3cret"), &with("Bearer s3cret")).is_ok());
        for bad in ["Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "s3cret"] {
            let e = check(Some("s3cret"), &with(bad)).unwrap_err();
            assert_eq!(e.code, Code::InvalidAdminToken, "{bad}");
        }
        assert_eq!(
            check(Some("s3cret"), &HeaderMap::new()).unwrap_err().code,
            Code::InvalidAdminToken
        );
        for unset in [None, Some("")] {
            assert_eq!(
                check(unset, &with("Bearer ")).unwrap_err().code,
                Code::AdminTokenUnset
            );
        }
    }
}
