//! Stage 3, `price`: what this request costs before anything is measured.
//! Today a route's fixed price; LLM routes will estimate from the body.

use faregate_core::Price;
use http::Request;

use crate::config::Route;

pub(crate) fn price<B>(route: &Route, _req: &Request<B>) -> Price {
    route.price
}
