//! Which endpoint a request is for. Every API path is served under `/v1` and
//! at the root, so a base URL with or without `/v1` works.

use http::Method;

use crate::problem::Flavor;

/// The endpoints of the double.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Chat,
    Responses,
    Embeddings,
    Models,
    Messages,
    CountTokens,
    Stats,
    Reset,
}

impl Route {
    pub(crate) fn find(method: &Method, path: &str) -> Option<Self> {
        let path = path
            .strip_prefix("/v1")
            .filter(|p| p.starts_with('/'))
            .unwrap_or(path);
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let route = match (method, path) {
            (&Method::POST, "/chat/completions") => Self::Chat,
            (&Method::POST, "/responses") => Self::Responses,
            (&Method::POST, "/embeddings") => Self::Embeddings,
            (&Method::GET, "/models") => Self::Models,
            (&Method::POST, "/messages") => Self::Messages,
            (&Method::POST, "/messages/count_tokens") => Self::CountTokens,
            (&Method::GET, "/_double/stats") => Self::Stats,
            (&Method::POST, "/_double/reset") => Self::Reset,
            _ => return None,
        };
        Some(route)
    }

    /// Whose format its answers and refusals take.
    pub(crate) fn flavor(self) -> Flavor {
        match self {
            Self::Messages | Self::CountTokens => Flavor::Anthropic,
            _ => Flavor::OpenAi,
        }
    }

    /// Whether it is part of the provider API (counted, authorised) rather
    /// than the double's own control surface.
    pub(crate) fn is_api(self) -> bool {
        !matches!(self, Self::Stats | Self::Reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_work_with_and_without_v1() {
        assert_eq!(
            Route::find(&Method::POST, "/v1/chat/completions"),
            Some(Route::Chat)
        );
        assert_eq!(
            Route::find(&Method::POST, "/chat/completions"),
            Some(Route::Chat)
        );
        assert_eq!(
            Route::find(&Method::POST, "/v1/messages/"),
            Some(Route::Messages)
        );
        assert_eq!(Route::find(&Method::GET, "/models"), Some(Route::Models));
        assert_eq!(Route::find(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(Route::find(&Method::POST, "/v1"), None);
        assert_eq!(Route::find(&Method::POST, "/v1x/messages"), None);
    }
}
