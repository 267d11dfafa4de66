//! `faregate llm-double`: the deterministic LLM provider double on its own
//! port, for SDK conformance checks and benchmarks. Prints `listening on
//! <addr>` once bound, then serves until killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

pub(crate) async fn run(
    listen: SocketAddr,
    api_key: Option<String>,
    token_delay: &str,
) -> anyhow::Result<ExitCode> {
    let token_delay = parse_delay(token_delay)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);
    let options = faregate_llm_double::Options {
        api_key,
        token_delay,
    };
    faregate_llm_double::serve(listener, options).await?;
    Ok(ExitCode::SUCCESS)
}

/// `250us`, `5ms`, `1s`; a bare number is milliseconds.
fn parse_delay(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("bad --token-delay {text:?}"))?;
    match unit {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "us" | "µs" => Ok(Duration::from_micros(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => anyhow::bail!("bad --token-delay {text:?}: use us, ms or s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_with_units() {
        assert_eq!(parse_delay("0ms").ok(), Some(Duration::ZERO));
        assert_eq!(parse_delay("5ms").ok(), Some(Duration::from_millis(5)));
        assert_eq!(parse_delay("250us").ok(), Some(Duration::from_micros(250)));
        assert_eq!(parse_delay("2s").ok(), Some(Duration::from_secs(2)));
        assert_eq!(parse_delay("7").ok(), Some(Duration::from_millis(7)));
        assert!(parse_delay("fast").is_err());
        assert!(parse_delay("5m").is_err());
    }
}
