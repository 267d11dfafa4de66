//! Server-sent-event streams written ahead and played back: each event is
//! its own body frame, and token events wait the token delay first, so a
//! client sees tokens arrive one by one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::Value;
use tokio::time::Sleep;

/// The events of one stream, in order.
#[derive(Debug, Default)]
pub(crate) struct Script {
    events: Vec<Event>,
    /// The pause before each token event.
    delay: Duration,
}

#[derive(Debug)]
struct Event {
    /// Whether the token delay comes before this event.
    paced: bool,
    data: Bytes,
}

impl Script {
    /// An empty script whose tokens wait `delay` each.
    pub(crate) fn paced(delay: Duration) -> Self {
        Self {
            events: Vec::new(),
            delay,
        }
    }

    /// Adds `data: <json>` with an optional `event:` line.
    pub(crate) fn push(&mut self, event: Option<&str>, data: &Value) {
        self.add(false, event, data);
    }

    /// Adds a token event, which waits the token delay first.
    pub(crate) fn push_token(&mut self, event: Option<&str>, data: &Value) {
        self.add(true, event, data);
    }

    /// Adds a `data:` line that is not JSON (`[DONE]`).
    pub(crate) fn push_raw(&mut self, data: &'static str) {
        let data = Bytes::from(format!("data: {data}\n\n"));
        self.events.push(Event { paced: false, data });
    }

    fn add(&mut self, paced: bool, event: Option<&str>, data: &Value) {
        let json = data.to_string();
        let mut text = String::with_capacity(json.len() + 40);
        if let Some(name) = event {
            text.push_str("event: ");
            text.push_str(name);
            text.push('\n');
        }
        text.push_str("data: ");
        text.push_str(&json);
        text.push_str("\n\n");
        self.events.push(Event {
            paced,
            data: Bytes::from(text),
        });
    }

    /// The body that plays the script.
    pub(crate) fn into_body(self) -> ScriptBody {
        ScriptBody {
            events: self.events.into_iter(),
            delay: self.delay,
            waiting: None,
        }
    }
}

/// A response body that yields one frame per event.
#[derive(Debug)]
pub(crate) struct ScriptBody {
    events: std::vec::IntoIter<Event>,
    delay: Duration,
    /// A paced event and the timer it waits for.
    waiting: Option<(Pin<Box<Sleep>>, Bytes)>,
}

impl Body for ScriptBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some((sleep, _)) = &mut this.waiting {
            ready!(sleep.as_mut().poll(cx));
            let data = this
                .waiting
                .take()
                .map(|(_, data)| data)
                .unwrap_or_default();
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match this.events.next() {
            None => Poll::Ready(None),
            Some(event) if event.paced && !this.delay.is_zero() => {
                let mut sleep = Box::pin(tokio::time::sleep(this.delay));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Ok(Frame::data(event.data))));
                }
                this.waiting = Some((sleep, event.data));
                Poll::Pending
            }
            Some(event) => Poll::Ready(Some(Ok(Frame::data(event.data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.events.len() == 0
    }
}
