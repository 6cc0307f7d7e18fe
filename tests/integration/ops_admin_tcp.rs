//! The admin API over TCP (`admin_listen`): a bearer token on every request
//! (none, wrong → 401 with `WWW-Authenticate: Bearer`), the `admin_public`
//! routes open without it, the page's `/?token=` login cookie, the unix socket
//! still unauthenticated; without a token (loopback only) requests for other
//! host names are refused; and no token on a non-loopback address is a config
//! error (exit 2, `file:line:column`).

use std::process::Command;

use crate::harness::{free_port, get, raw_request, temp_dir, Response, BIN};
use crate::sup_util::{start_in, write_config, SOON};

const TOKEN: &str = "tcp-test-token-0123456789";

const PROGRAMS: &str = r#"[programs.app]
command = ["sleep", "infinity"]
restart = "always"
"#;

fn post(addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(addr, req.as_bytes(), SOON)
}

fn must(r: Option<Response>, what: &str) -> Response {
    r.unwrap_or_else(|| panic!("no answer to {what}"))
}

#[test]
fn token_required_wrong_refused_public_routes_open() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sup = start_in(
        dir,
        &format!(
            "admin_listen = \"{addr}\"\nadmin_token_file = \"@DIR@/token\"\nadmin_public = [\"livez\"]"
        ),
        PROGRAMS,
    );
    let pid = sup.wait_pid("app");
    assert!(sup.output().contains(&format!("admin on http://{addr}/")));
    let bearer = format!("Bearer {TOKEN}");
    let cookie = format!("selfheal_admin={TOKEN}");

    // No token: 401 with the RFC 6750 challenge, on every route (unknown ones too).
    for path in ["/status", "/", "/readyz", "/health", "/nope"] {
        let r = must(get(&addr, path, &[]), path);
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{path}: {challenge:?}");
        assert!(!challenge.contains("invalid_token"), "{challenge:?}");
    }
    // Wrong tokens: 401, error="invalid_token".
    for auth in [
        "Bearer wrong",
        "Bearer tcp-test-token-012345678",
        "Bearer tcp-test-token-01234567890",
        "Basic dGNwOnRlc3Q=",
        "Bearer",
    ] {
        let r = must(get(&addr, "/status", &[("Authorization", auth)]), auth);
        assert_eq!(r.status, 401, "{auth}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
        assert!(challenge.contains("invalid_token"), "{challenge:?}");
    }
    let r = must(
        get(&addr, "/status", &[("Cookie", "selfheal_admin=nope")]),
        "bad cookie",
    );
    assert_eq!(r.status, 401);
    let r = must(
        post(&addr, "/programs/app/restart", &[]),
        "POST without token",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        sup.program("app")["pid"],
        pid,
        "an unauthenticated POST acted"
    );

    // The right token, as a header or as the page's cookie: served.
    let r = must(
        get(&addr, "/status", &[("Authorization", &bearer)]),
        "status",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(status["programs"][0]["name"], "app");
    let r = must(
        get(&addr, "/status", &[("Cookie", &cookie)]),
        "status by cookie",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = must(get(&addr, "/", &[("Cookie", &cookie)]), "page by cookie");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<title>selfheal status</title>"));
    let r = must(
        post(
            &addr,
            "/programs/app/restart",
            &[("Authorization", &bearer)],
        ),
        "POST restart",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    sup.wait_new_pid("app", pid, SOON);

    // admin_public opens exactly the listed GET routes.
    let r = must(get(&addr, "/livez", &[]), "livez");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = must(get(&addr, "/readyz", &[]), "readyz");
    assert_eq!(r.status, 401, "readyz is not in admin_public");

    // The page's login: /?token= sets the cookie and sends the browser to /.
    let r = must(get(&addr, &format!("/?token={TOKEN}"), &[]), "login");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let set = r.header("set-cookie").unwrap_or_default();
    for part in [cookie.as_str(), "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{part} missing in {set:?}");
    }
    let r = must(get(&addr, "/?token=wrong", &[]), "bad login");
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());

    // The unix socket needs no token (its file mode is the authentication).
    let (code, text) = sup.cli(&["status"]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn loopback_without_a_token_is_open() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sup = start_in(temp_dir(), &format!("admin_listen = \"{addr}\""), PROGRAMS);
    sup.wait_pid("app");
    let r = must(get(&addr, "/status", &[]), "status");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = must(get(&addr, "/", &[]), "page");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{:?}",
        r.headers
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp:?}");
    // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding)
    // cannot drive the token-less API from a local browser.
    for host in ["evil.example", "localhost.evil.example:80"] {
        let req = format!("POST /programs/app/stop HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let r = must(raw_request(&addr, req.as_bytes(), SOON), host);
        assert_eq!(r.status, 403, "{host}: {}", r.text());
    }
    let r = must(get(&addr, "/status", &[]), "status");
    assert_eq!(r.status, 200);
    assert_eq!(sup.program("app")["state"], "running");
}

fn run(args: &[&str], config: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run selfheal");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn no_token_off_loopback_and_bad_token_files_are_config_errors() {
    let dir = temp_dir();
    let port = free_port();
    // write_config puts `[supervisor]` on line 1 and admin_socket on line 2.
    let config = write_config(
        dir.path(),
        &format!("admin_listen = \"0.0.0.0:{port}\""),
        PROGRAMS,
    );
    let p = config.display();
    for args in [&["check"][..], &[][..]] {
        let (code, out) = run(args, &config);
        assert_eq!(code, 2, "{args:?}: {out}");
        let expected =
            format!("{p}:3:1: supervisor.admin_listen: 0.0.0.0:{port} is not a loopback address");
        assert!(
            out.contains(&expected),
            "{args:?}: missing {expected:?} in:\n{out}"
        );
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the refused config opened its port"
    );

    // An empty or unreadable token file: exit 2 naming the value's position.
    std::fs::write(dir.path().join("empty"), "  \n").unwrap();
    for (file, needle) in [
        ("empty", "the token file is empty"),
        ("missing", "cannot read"),
    ] {
        let config = write_config(
            dir.path(),
            &format!("admin_listen = \"[::]:{port}\"\nadmin_token_file = \"@DIR@/{file}\""),
            PROGRAMS,
        );
        let (code, out) = run(&[], &config);
        assert_eq!(code, 2, "{out}");
        let expected = format!("{p}:4:20: supervisor.admin_token_file: ");
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}
