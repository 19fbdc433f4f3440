//! The `musubi` binary as an operator runs it: embedded default, CLI commands, bad settings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn musubi() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_musubi"));
    c.env_remove("DATABASE_URL")
        .env_remove("MUSUBI_CONFIG")
        .env_remove("MUSUBI_LISTEN")
        .env_remove("MUSUBI_DATA_DIR")
        .env("MUSUBI_LOG", "warn")
        .stdin(Stdio::null());
    c
}

/// A data directory the unprivileged PostgreSQL user can reach (tempfile makes 0700 dirs).
fn data_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("musubi-bin-")
        .tempdir()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    d
}

fn http_get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn graphql_post(base: &str, query: &str) -> String {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let body = serde_json::json!({ "query": query }).to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts the server and waits for the line that announces its URL.
fn start(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Musubi is running at ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => (child, url),
        Err(_) => {
            let _ = child.kill();
            panic!("musubi did not announce its URL");
        }
    }
}

fn interrupt_and_wait(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "musubi exited with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "musubi did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
}

fn postmaster_pid(data: &Path) -> i32 {
    let text = std::fs::read_to_string(data.join("postgres/postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

#[test]
fn demo_runs_on_embedded_postgres_stops_cleanly_and_reuses_its_data() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let (child, url) = start(
        musubi()
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    let page = http_get(&url, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("みなと川医師会") && page.contains("さくら台医師会"));
    let pid = postmaster_pid(&data);
    assert!(alive(pid));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    if nix::unistd::geteuid().is_root() {
        assert!(
            !uid_line.contains("\t0\t"),
            "postgres must not run as root: {uid_line}"
        );
    }
    interrupt_and_wait(child);
    assert!(!alive(pid), "postgres {pid} was left running");

    // An operator command against the same data directory, while the server is down.
    let out = musubi()
        .args([
            "association",
            "create",
            "--slug",
            "kawabe",
            "--name",
            "川辺医師会",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (child, url) = start(
        musubi()
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    let r = graphql_post(&url, "{ associations { slug } }");
    for slug in ["minatogawa", "sakuradai", "kawabe"] {
        assert!(r.contains(slug), "{r}");
    }
    assert_eq!(
        r.matches("\"slug\"").count(),
        3,
        "demo data seeded twice? {r}"
    );
    let pid = postmaster_pid(&data);
    interrupt_and_wait(child);
    assert!(!alive(pid));
}

#[test]
fn server_recovers_after_a_crash_left_postgres_state_behind() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let (mut child, _) = start(
        musubi()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    let pid = postmaster_pid(&data);
    child.kill().unwrap(); // SIGKILL: no clean shutdown
    let _ = child.wait();
    // The private cluster goes down with its supervisor, leaving a stale pid file.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(pid), "postgres outlived its supervisor");
    let (child, url) = start(
        musubi()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    assert!(http_get(&url, "/readyz").contains("ready"));
    interrupt_and_wait(child);
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `/readyz`'s status line, or `None` while the server does not answer.
fn readyz_status(url: &str) -> Option<String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    TcpStream::connect(addr).ok()?;
    Some(http_get(url, "/readyz").lines().next()?.to_owned())
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_embedded_postgresql_is_started_again_when_it_dies_under_a_running_server() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let (child, url) = start(
        musubi()
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    // Killed if the test fails before stopping it (its data directory goes with the test).
    let mut child = KillOnDrop(Some(child));
    let before = graphql_post(&url, "{ associations { slug } }");
    assert!(before.contains("minatogawa"), "{before}");
    let first = postmaster_pid(&data);
    let started = Instant::now();
    // A crash: the postmaster killed outright (its backends follow it).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the postmaster gone", Duration::from_secs(30), || {
        !alive(first)
    });
    // Musubi starts a new one by itself; the same process serves again.
    wait_until("a new postmaster", Duration::from_secs(60), || {
        std::fs::read_to_string(data.join("postgres/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            .is_some_and(|pid| pid != first && alive(pid))
    });
    wait_until("/readyz ready again", Duration::from_secs(60), || {
        readyz_status(&url).is_some_and(|l| l.contains("200"))
    });
    // The pool may still hold connections of the dead cluster: those requests are refused
    // with DATABASE_UNAVAILABLE (retry later), never INTERNAL, until they are replaced.
    let mut refused = 0;
    wait_until("queries answered again", Duration::from_secs(30), || {
        let after = graphql_post(&url, "{ associations { slug } }");
        if after.contains("minatogawa") && after.contains("sakuradai") {
            return true;
        }
        assert!(after.contains("DATABASE_UNAVAILABLE"), "{after}");
        refused += 1;
        false
    });
    let second = postmaster_pid(&data);
    assert_ne!(first, second);
    println!(
        "postmaster {first} killed; {second} serving again after {:?} ({refused} requests \
         refused meanwhile)",
        started.elapsed()
    );
    // Stopping still stops the new cluster.
    interrupt_and_wait(child.0.take().unwrap());
    assert!(!alive(second), "postgres {second} was left running");
}

#[test]
fn bad_configuration_stops_with_a_message_naming_the_setting() {
    let out = musubi()
        .env("MUSUBI_LISTEN", "localhost")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MUSUBI_LISTEN") && err.contains("localhost"),
        "{err}"
    );

    let out = musubi()
        .env("DATABASE_URL", "mysql://root:hunter2@db/x")
        .arg("serve")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DATABASE_URL") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn missing_postgresql_binaries_say_what_to_install() {
    let dir = data_dir();
    let out = musubi()
        .env("MUSUBI_PG_BIN", dir.path().join("no-such-dir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install postgresql"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn schema_command_prints_the_checked_in_sdl() {
    let out = musubi().arg("schema").output().unwrap();
    assert!(out.status.success());
    let sdl = String::from_utf8_lossy(&out.stdout);
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql"),
    )
    .unwrap();
    let first_difference = sdl
        .trim()
        .lines()
        .zip(checked_in.trim().lines())
        .position(|(a, b)| a != b)
        .map(|i| i + 1);
    assert!(
        sdl.trim() == checked_in.trim(),
        "docs/schema.graphql is stale (first difference at line {first_difference:?}): \
         run `cargo run -q -- schema > docs/schema.graphql`"
    );
}
