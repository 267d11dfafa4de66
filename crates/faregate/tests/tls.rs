//! TLS end to end: rustls termination with HTTP/2 chosen by ALPN,
//! certificates re-read on reload, and HTTPS upstreams checked against a
//! configured root.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use faregate_testkit::{TestGateway, Upstream};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

struct Cert {
    der: CertificateDer<'static>,
}

/// A self-signed certificate for `localhost`, written as PEM files in `dir`.
fn make_cert(dir: &Path) -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    Cert {
        der: ck.cert.der().clone(),
    }
}

fn tls_config(dir: &Path, upstream: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"{0}/cert.pem\", key = \"{0}/key.pem\" }}\n\
         [[routes]]\nname = \"all\"\npath = \"/*\"\nupstreams = [\"{upstream}\"]\n",
        dir.display()
    )
}

/// Connects with TLS trusting `root`, offering `alpn`; returns the
/// negotiated protocol, the server's certificate and the stream.
async fn connect(
    addr: std::net::SocketAddr,
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> (
    Option<Vec<u8>>,
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with a trusted certificate");
    let (_, conn) = stream.get_ref();
    let proto = conn.alpn_protocol().map(<[u8]>::to_vec);
    let cert = conn.peer_certificates().unwrap()[0].clone().into_owned();
    (proto, cert, stream)
}

#[tokio::test]
async fn tls_offers_h2_by_alpn_and_reloads_certificates() {
    let up = Upstream::start().await;
    let dir = std::env::temp_dir().join(format!("faregate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = make_cert(&dir);
    let gw = TestGateway::start(&tls_config(&dir, &up.url())).await;

    let (proto, cert, stream) = connect(gw.addr, &first.der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(proto.as_deref(), Some(&b"h2"[..]));
    assert_eq!(cert, first.der);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/inspect/tls")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let proto_seen = seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-forwarded-proto")
        .unwrap()[1]
        .clone();
    assert_eq!(proto_seen, "https");

    let (proto, _, _) = connect(gw.addr, &first.der, &[b"http/1.1"]).await;
    assert_eq!(proto.as_deref(), Some(&b"http/1.1"[..]));

    // New files, same paths: a reload serves the new certificate.
    let second = make_cert(&dir);
    let text = tls_config(&dir, &up.url()).replace("127.0.0.1:0", &gw.addr.to_string());
    let rails = [];
    let config = faregate_gateway::config::load(&text, Path::new("."), &|_| None, &rails).unwrap();
    // The listener address must not change on reload: compare with the bound one.
    let reloaded = gw.gw.reload(config);
    assert!(
        reloaded.is_err(),
        "a listener change (0 -> bound port) needs a restart"
    );
    let same = faregate_gateway::config::load(
        &tls_config(&dir, &up.url()),
        Path::new("."),
        &|_| None,
        &rails,
    )
    .unwrap();
    gw.gw.reload(same).unwrap();
    let (_, cert, _) = connect(gw.addr, &second.der, &[b"h2"]).await;
    assert_eq!(
        cert, second.der,
        "new connections get the reloaded certificate"
    );
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_configured_root() {
    let up = Upstream::start().await;
    let dir = std::env::temp_dir().join(format!("faregate-tls-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_cert(&dir);
    let tls_front = TestGateway::start(&tls_config(&dir, &up.url())).await;
    let https = format!("https://localhost:{}", tls_front.addr.port());
    let trusting = format!(
        "[server]\nupstream_ca_file = \"{}/cert.pem\"\nupstream_system_roots = false\n[[routes]]\nname = \"via-tls\"\npath = \"/*\"\nupstreams = [\"{https}\"]\n",
        dir.display()
    );
    let gw = TestGateway::start(&trusting).await;
    let reply = faregate_testkit::Client::http1()
        .get(&gw.url("/inspect/through"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["uri"], "/inspect/through");

    let untrusting = format!(
        "[server]\nupstream_system_roots = false\n[[routes]]\nname = \"bad\"\npath = \"/*\"\nupstreams = [\"{https}\"]\n"
    );
    let gw2 = TestGateway::start(&untrusting).await;
    let reply = faregate_testkit::Client::http1()
        .get(&gw2.url("/inspect/x"))
        .await;
    assert_eq!(
        reply.status, 502,
        "an untrusted upstream certificate is refused"
    );
}
