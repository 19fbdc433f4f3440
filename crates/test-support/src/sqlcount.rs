//! Counting the SQL statements a piece of code sends to PostgreSQL, exactly.
//!
//! [`SqlCounter`] is a small proxy on a Unix socket between a pool and the test server that
//! reads the frontend side of the wire protocol. **A statement is one request to execute**:
//! a simple-query message (`Q`: what sqlx uses for `BEGIN` and for queued rollbacks) or an
//! extended-protocol `Execute` (`E`: every `query(..).execute/fetch*`, `COMMIT`, `ROLLBACK`).
//! Preparing a statement (Parse/Describe) and the pool's liveness pings (a bare Sync) are not
//! statements. One simple-query message holding several `;`-separated statements counts once
//! (only `raw_sql` sends those; the application uses it for migrations only).
//!
//! Why not sqlx's statement log (`tracing` target `sqlx::query`)? sqlx 0.8 sends `BEGIN` and the
//! rollback of a dropped transaction without logging them, so a count built on it would miss
//! every transaction start.
//!
//! A connection the pool opens during a measurement adds its `after_connect` statement: the
//! pool of [`SqlCounter::db`] has one connection, opened when it is built, and tests warm the
//! rest (the association registry) with one unmeasured call ([`Measured::new_connections`]
//! tells if a connection was opened anyway).
//!
//! ```ignore
//! let counter = SqlCounter::start(&test_db.options).await;
//! let services = Services::build(counter.db().await, RateLimiter::in_process()).await?;
//! let (home, measured) = counter.measure(services.home(&viewer)).await;
//! assert!(measured.count() <= 7, "{}", measured.listing());
//! ```

use musubi_db::Db;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
/// The port only names the socket file (`.s.PGSQL.<port>`) in the proxy's directory.
const PROXY_PORT: u16 = 5432;

#[derive(Default)]
struct Log {
    recording: bool,
    statements: Vec<String>,
    new_connections: usize,
}

/// What a measured piece of code sent.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The statements, in the order they were sent (their SQL, whitespace collapsed).
    pub statements: Vec<String>,
    /// Connections opened meanwhile (each ran the pool's `after_connect` statement).
    pub new_connections: usize,
}

impl Measured {
    pub fn count(&self) -> usize {
        self.statements.len()
    }

    /// The statements, one a line, for assertion messages.
    pub fn listing(&self) -> String {
        self.statements
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{:>3}. {s}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A counting proxy in front of the test server. Stops (and removes its socket) when dropped.
pub struct SqlCounter {
    log: Arc<Mutex<Log>>,
    dir: PathBuf,
    options: PgConnectOptions,
    accept: tokio::task::JoinHandle<()>,
}

enum Upstream {
    Tcp(String, u16),
    Unix(PathBuf),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Upstream {
    fn of(options: &PgConnectOptions) -> Self {
        let port = options.get_port();
        match options.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            None if options.get_host().starts_with('/') => {
                Upstream::Unix(PathBuf::from(options.get_host()).join(format!(".s.PGSQL.{port}")))
            }
            None => Upstream::Tcp(options.get_host().to_owned(), port),
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Upstream::Tcp(host, port) => {
                Box::new(TcpStream::connect((host.as_str(), *port)).await?)
            }
            Upstream::Unix(path) => Box::new(UnixStream::connect(path).await?),
        })
    }
}

impl SqlCounter {
    /// Starts a proxy to the server `upstream` points at (its database, user and password are
    /// kept in [`SqlCounter::options`]).
    pub async fn start(upstream: &PgConnectOptions) -> Self {
        let dir =
            std::env::temp_dir().join(format!("musubi-sql-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the proxy's socket directory");
        let listener = UnixListener::bind(dir.join(format!(".s.PGSQL.{PROXY_PORT}")))
            .expect("bind the proxy's socket");
        let log = Arc::new(Mutex::new(Log::default()));
        let target = Arc::new(Upstream::of(upstream));
        let accept = {
            let log = log.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let log = log.clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let _ = relay(client, &target, &log).await;
                    });
                }
            })
        };
        let options = upstream
            .clone()
            .socket(&dir)
            .port(PROXY_PORT)
            // The proxy reads the protocol: it must stay in clear text (it is local anyway).
            .ssl_mode(PgSslMode::Disable);
        Self {
            log,
            dir,
            options,
            accept,
        }
    }

    /// Connection options that go through the proxy.
    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// A database handle whose statements are counted, wired like the application's but with
    /// one connection in the main pool and one per association: a connection handed back after
    /// a call is reused by the next instead of a new one being opened (which would add its
    /// setup statement). Code that needs a second connection of the same pool while holding
    /// one (none of the measured paths) would wait for it.
    pub async fn db(&self) -> Db {
        Db::connect(self.options(), 1, Duration::from_secs(30))
            .await
            .expect("connect through the counting proxy")
            .with_tenant_connections(1)
    }

    /// Runs `work` and returns what it sent. Only statements sent while `work` runs are
    /// counted: nothing else may use the counted pool meanwhile.
    pub async fn measure<F: Future>(&self, work: F) -> (F::Output, Measured) {
        {
            let mut log = self.log.lock().unwrap();
            assert!(!log.recording, "measurements do not nest");
            *log = Log {
                recording: true,
                ..Log::default()
            };
        }
        let out = work.await;
        let mut log = self.log.lock().unwrap();
        log.recording = false;
        let measured = Measured {
            statements: std::mem::take(&mut log.statements),
            new_connections: std::mem::take(&mut log.new_connections),
        };
        (out, measured)
    }
}

impl Drop for SqlCounter {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Per connection: prepared statements by name and the statement bound to each portal.
#[derive(Default)]
struct Session {
    prepared: HashMap<String, String>,
    portals: HashMap<String, String>,
}

fn cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(&bytes[..end]).into_owned();
    (s, bytes.get(end + 1..).unwrap_or(&[]))
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Session {
    /// The statement a frontend message executes, if it executes one.
    fn observe(&mut self, tag: u8, payload: &[u8]) -> Option<String> {
        match tag {
            b'Q' => Some(one_line(&cstr(payload).0)),
            b'P' => {
                let (name, rest) = cstr(payload);
                let (sql, _) = cstr(rest);
                self.prepared.insert(name, sql);
                None
            }
            b'B' => {
                let (portal, rest) = cstr(payload);
                let (statement, _) = cstr(rest);
                let sql = self.prepared.get(&statement).cloned().unwrap_or_default();
                self.portals.insert(portal, sql);
                None
            }
            b'E' => {
                let (portal, _) = cstr(payload);
                Some(one_line(
                    self.portals
                        .get(&portal)
                        .map_or("(unknown portal)", String::as_str),
                ))
            }
            _ => None,
        }
    }
}

async fn relay(mut client: UnixStream, target: &Upstream, log: &Mutex<Log>) -> std::io::Result<()> {
    // Startup: a length-prefixed packet without a tag; refuse encryption requests ourselves.
    let startup = loop {
        let len = client.read_i32().await?;
        let mut body = vec![0; usize::try_from(len - 4).unwrap_or(0)];
        client.read_exact(&mut body).await?;
        let code = body
            .get(..4)
            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        let mut packet = len.to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        break (code, packet);
    };
    let server = target.connect().await?;
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let (mut client_read, mut client_write) = client.into_split();
    server_write.write_all(&startup.1).await?;
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    if startup.0 != CANCEL_REQUEST {
        {
            let mut log = log.lock().unwrap();
            if log.recording {
                log.new_connections += 1;
            }
        }
        let mut session = Session::default();
        // The client closing its side ends the loop.
        while let Ok(tag) = client_read.read_u8().await {
            let len = client_read.read_i32().await?;
            let mut payload = vec![0; usize::try_from(len - 4).unwrap_or(0)];
            client_read.read_exact(&mut payload).await?;
            // Counted before it is forwarded: the caller cannot see its answer any earlier.
            if let Some(sql) = session.observe(tag, &payload) {
                let mut log = log.lock().unwrap();
                if log.recording {
                    log.statements.push(sql);
                }
            }
            let mut message = Vec::with_capacity(payload.len() + 5);
            message.push(tag);
            message.extend_from_slice(&len.to_be_bytes());
            message.extend_from_slice(&payload);
            server_write.write_all(&message).await?;
        }
    }
    let _ = server_write.shutdown().await;
    let _ = back.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(parts: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn executes_and_simple_queries_count_parse_and_bind_do_not() {
        let mut s = Session::default();
        assert_eq!(s.observe(b'Q', &msg(&["BEGIN"])).as_deref(), Some("BEGIN"));
        assert_eq!(s.observe(b'P', &msg(&["s1", "SELECT\n  1", ""])), None);
        assert_eq!(s.observe(b'B', &msg(&["", "s1"])), None);
        assert_eq!(s.observe(b'S', &[]), None);
        assert_eq!(
            s.observe(b'E', &msg(&[""])).as_deref(),
            Some("SELECT 1"),
            "the SQL of the bound statement, on one line"
        );
        assert_eq!(s.observe(b'D', &msg(&["Ss1"])), None);
    }
}
