//! The `faregate` binary as an operator runs it: `check-config`, `init`,
//! `serve` with reload on SIGHUP and on file change, graceful shutdown on
//! SIGTERM, the admin listener, and `demo`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use faregate_testkit::{Client, Upstream, free_port, temp_dir};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_faregate");

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn status(url: &str) -> u16 {
    Client::http1().get(url).await.status.as_u16()
}

/// Whether something answers on `port`.
async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

#[test]
fn check_config_lists_every_problem_and_exits_non_zero() {
    let dir = temp_dir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[routes]]\nname = \"a\"\npath = \"/a\"\nupstreams = [\"nope\"]\nprice = \"1.5 DOGE\"\ncolour = \"red\"\n[limits]\nidle_timeout = \"forever\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "routes[0].upstreams[0]",
        "routes[0].price",
        "routes[0].colour",
        "limits.idle_timeout",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
    assert!(err.contains("4 problems"), "{err}");
}

#[test]
fn init_writes_an_example_that_checks() {
    let dir = temp_dir("init");
    let file = dir.join("faregate.toml");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let check = run(&["check-config", "faregate.toml"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("ok (3 routes"));
    let again = run(&["init"]);
    assert!(!again.status.success(), "init does not overwrite");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(run(&["init", "--force"]).status.success());
    assert!(
        std::fs::read_to_string(file)
            .unwrap()
            .contains("[[routes]]")
    );
}

fn serve_config(port: u16, admin: u16, upstream: &str, routes: &[&str]) -> String {
    let mut text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:{port}\"\n[admin]\naddress = \"127.0.0.1:{admin}\"\ntoken = \"$TEST_ADMIN_TOKEN\"\n[limits]\ndrain_timeout = \"5s\"\n"
    );
    for r in routes {
        text.push_str(&format!("[[routes]]\nname = \"{r}\"\npath = \"/{r}/*\"\nupstreams = [\"{upstream}\"]\nstrip_prefix = \"/{r}\"\n"));
    }
    text
}

fn serve(config: &Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("TEST_ADMIN_TOKEN", "admin-secret-for-tests")
        .env("FAREGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Collects the child's stderr in the background.
fn stderr_log(child: &mut Child) -> std::sync::Arc<parking_lot::Mutex<String>> {
    let log = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut s = sink.lock();
            s.push_str(&line);
            s.push('\n');
        }
    });
    log
}

#[tokio::test]
async fn serve_reloads_on_sighup_and_file_change_and_keeps_running_on_a_bad_file() {
    let up = Upstream::start().await;
    let dir = temp_dir("reload");
    let file = dir.join("faregate.toml");
    let (port, admin) = (free_port(), free_port());
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    std::fs::write(&file, serve_config(port, admin, &up.url(), &["a"])).unwrap();
    let mut child = serve(&file);
    let log = stderr_log(&mut child);
    wait_until("the listener", async || listening(port).await).await;
    assert_eq!(status(&url("/a/inspect")).await, 200);
    assert_eq!(status(&url("/b/inspect")).await, 404);

    // SIGHUP picks up route b. The file watcher may beat the signal to it;
    // either way the new route must be served.
    std::fs::write(&file, serve_config(port, admin, &up.url(), &["a", "b"])).unwrap();
    signal(&child, "-HUP");
    wait_until("route b", async || status(&url("/b/inspect")).await == 200).await;

    // A change to the file alone is enough.
    std::fs::write(
        &file,
        serve_config(port, admin, &up.url(), &["a", "b", "c"]),
    )
    .unwrap();
    wait_until("route c", async || status(&url("/c/inspect")).await == 200).await;

    // A broken file is refused; the previous config keeps serving.
    std::fs::write(&file, "[[routes]]\nname = \"broken\"\npath = \"/x\"\nupstreams = [\"http://127.0.0.1:1\"]\nprice = \"lots\"\n").unwrap();
    signal(&child, "-HUP");
    wait_until("the refusal in the log", async || {
        log.lock().contains("config reload refused")
    })
    .await;
    assert_eq!(status(&url("/c/inspect")).await, 200);
    assert!(
        log.lock().contains("routes[0].price"),
        "the log says why: {}",
        log.lock()
    );

    // The admin API reloads too, behind its token.
    std::fs::write(&file, serve_config(port, admin, &up.url(), &["a"])).unwrap();
    let admin_url = format!("http://127.0.0.1:{admin}/v1/reload");
    let req = |token: &str| {
        http::Request::post(&admin_url)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::default())
            .unwrap()
    };
    assert_eq!(Client::http1().send(req("wrong")).await.status, 401);
    assert_eq!(
        Client::http1()
            .send(req("admin-secret-for-tests"))
            .await
            .status,
        200
    );
    assert_eq!(status(&url("/c/inspect")).await, 404);
    let metrics = Client::http1()
        .get(&format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .text();
    assert!(
        metrics.contains("faregate_requests_total{route=\"a\",status=\"200\"}"),
        "{metrics}"
    );
    let failed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("faregate_config_reloads_total{result=\"failed\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(failed >= 1, "the refused reload is counted: {metrics}");
    signal(&child, "-TERM");
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_then_exits() {
    let up = Upstream::start().await;
    let dir = temp_dir("drain");
    let file = dir.join("faregate.toml");
    let (port, admin) = (free_port(), free_port());
    std::fs::write(&file, serve_config(port, admin, &up.url(), &["a"])).unwrap();
    let mut child = serve(&file);
    let _log = stderr_log(&mut child);
    wait_until("the listener", async || listening(port).await).await;
    let slow = tokio::spawn(async move {
        Client::http1()
            .get(&format!("http://127.0.0.1:{port}/a/slow/1500"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!listening(port).await, "no new connections once draining");
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "the request in flight finished");
    assert_eq!(reply.text(), "slow");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after the drain")
        .unwrap();
    assert!(exit.success());
}

#[tokio::test]
async fn demo_runs_with_no_setup() {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0", "--admin-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut gw, mut admin, mut key, mut token, mut account) = (None, None, None, None, None);
    while let Some(line) = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        if let Some(rest) = line.strip_prefix("faregate demo: gateway on ") {
            let (g, a) = rest.split_once(", admin on ").unwrap();
            gw = Some(g.to_owned());
            admin = Some(a.to_owned());
        }
        key = key.or(line.strip_prefix("FAREGATE_DEMO_KEY=").map(str::to_owned));
        account = account.or(line
            .strip_prefix("FAREGATE_DEMO_ACCOUNT=")
            .map(str::to_owned));
        token = token.or(line
            .strip_prefix("FAREGATE_ADMIN_TOKEN=")
            .map(str::to_owned));
        if line.starts_with("Access log") {
            break;
        }
    }
    let (gw, admin, key) = (gw.unwrap(), admin.unwrap(), key.unwrap());
    let (account, token) = (account.unwrap(), token.unwrap());
    assert!(key.starts_with("fg_test_"));
    let c = Client::http1();
    assert_eq!(c.get(&format!("{gw}/demo/free")).await.status, 200);
    // `/demo/x402` answers a real x402 402 with no chain configured.
    let x402 = c.get(&format!("{gw}/demo/x402")).await;
    assert_eq!(x402.status, 402);
    let required: serde_json::Value = {
        use base64::Engine as _;
        let header = x402.header("payment-required").expect("PAYMENT-REQUIRED");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(header)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(required["x402Version"], 2);
    assert_eq!(required["resource"]["url"], format!("{gw}/demo/x402"));
    assert_eq!(required["accepts"][0]["network"], "eip155:84532");
    assert_eq!(
        required["accepts"][0]["asset"],
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    );
    assert_eq!(required["accepts"][0]["amount"], "10000");
    let refused = c.get(&format!("{gw}/demo/paid")).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["code"], "missing_credentials");
    let paid = |path: &str| {
        http::Request::get(format!("{gw}{path}"))
            .header("authorization", format!("Bearer {key}"))
            .body(http_body_util::Full::default())
            .unwrap()
    };
    let ok = c.send(paid("/demo/paid")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let stream = c.send(paid("/demo/stream")).await;
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.text().matches("event: tick").count(), 20);
    // 0.010 USD of opening credit pays ten calls: two so far, eight more.
    for _ in 0..8 {
        assert_eq!(c.send(paid("/demo/paid")).await.status, 200);
    }
    let broke = c.send(paid("/demo/paid")).await;
    assert_eq!(broke.status, 402, "{}", broke.text());
    let problem = broke.json();
    assert_eq!(problem["code"], "insufficient_credits");
    assert_eq!(problem["price"], "0.001");
    assert_eq!(problem["balance"], "0.00");
    assert_eq!(problem["currency"], "USD");
    assert_eq!(problem["actions"][0]["kind"], "top_up");
    assert_eq!(problem["actions"][0]["method"], "POST");
    let top_up_url = problem["actions"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(top_up_url, format!("{admin}/v1/accounts/{account}/credits"));
    let topped = c
        .send(
            http::Request::post(&top_up_url)
                .header("authorization", format!("Bearer {token}"))
                .header("idempotency-key", "demo-test-1")
                .header("content-type", "application/json")
                .body(http_body_util::Full::from(
                    r#"{"amount": "0.002", "currency": "USD", "reason": "test"}"#,
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(topped.status, 201, "{}", topped.text());
    assert_eq!(c.send(paid("/demo/paid")).await.status, 200);
    let echo = c
        .send(
            http::Request::post(format!("{gw}/demo/echo"))
                .body(http_body_util::Full::from("hello"))
                .unwrap(),
        )
        .await;
    assert_eq!(echo.text(), "hello");
    let metrics = c.get(&format!("{admin}/metrics")).await.text();
    assert!(
        metrics.contains("faregate_requests_total{route=\"demo-paid\",status=\"200\"} 10"),
        "{metrics}"
    );
    // The access log is on stdout, one JSON line per request.
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["route"], "demo-free");
    signal(&child, "-TERM");
    assert!(child.wait().await.unwrap().success());
}
