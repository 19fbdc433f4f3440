//! Streaming `COPY … FROM STDIN` (text format): rows are produced on a blocking thread into
//! ~1 MB chunks while the previous chunk travels to PostgreSQL, so neither side waits for the
//! other and no table is ever held in memory as text.

use anyhow::{anyhow, Context as _};
use sqlx::PgConnection;
use tokio::sync::mpsc;
use uuid::Uuid;

const CHUNK: usize = 1 << 20;

/// Builds rows of one COPY stream. Fields are appended in column order; `end` closes a row.
pub struct Sink {
    buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
    first: bool,
    rows: u64,
    /// Unix microseconds of virtual time 0.
    base_us: i64,
}

impl Sink {
    fn sep(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.buf.push(b'\t');
        }
    }

    pub fn uuid(&mut self, u: Uuid) -> &mut Self {
        self.sep();
        let mut b = [0u8; 36];
        u.hyphenated().encode_lower(&mut b);
        self.buf.extend_from_slice(&b);
        self
    }

    /// Text with COPY's escapes (backslash, tab, newline, carriage return).
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.sep();
        for &b in s.as_bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                _ => self.buf.push(b),
            }
        }
        self
    }

    pub fn text_or_null(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.sep();
        push_int(&mut self.buf, v);
        self
    }

    /// An `integer[]` in COPY's text form (`{1,-2,3}`).
    pub fn int_array(&mut self, v: &[i32]) -> &mut Self {
        self.sep();
        self.buf.push(b'{');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            push_int(&mut self.buf, i64::from(*x));
        }
        self.buf.push(b'}');
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf.push(if v { b't' } else { b'f' });
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    /// A timestamp at virtual time `t` (see `model::NOW`).
    pub fn ts(&mut self, t: i64) -> &mut Self {
        self.sep();
        push_timestamp(&mut self.buf, self.base_us + t);
        self
    }

    pub fn end(&mut self) -> anyhow::Result<()> {
        self.buf.push(b'\n');
        self.first = true;
        self.rows += 1;
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + (64 << 10)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| anyhow!("the COPY stream was closed"))
    }
}

fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push2(buf: &mut Vec<u8>, v: i64) {
    buf.push(b'0' + (v / 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00` without going through a date library (millions of rows).
fn push_timestamp(buf: &mut Vec<u8>, unix_us: i64) {
    let secs = unix_us.div_euclid(1_000_000);
    let micros = unix_us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    push_int(buf, y);
    buf.push(b'-');
    push2(buf, m);
    buf.push(b'-');
    push2(buf, d);
    buf.push(b' ');
    push2(buf, sod / 3600);
    buf.push(b':');
    push2(buf, sod / 60 % 60);
    buf.push(b':');
    push2(buf, sod % 60);
    buf.push(b'.');
    let mut frac = [b'0'; 6];
    let mut f = micros;
    for slot in frac.iter_mut().rev() {
        *slot = b'0' + (f % 10) as u8;
        f /= 10;
    }
    buf.extend_from_slice(&frac);
    buf.extend_from_slice(b"+00");
}

/// Runs `COPY <target> FROM STDIN` with rows from `produce` (run on a blocking thread);
/// returns the rows PostgreSQL took.
pub async fn copy<F>(
    conn: &mut PgConnection,
    target: &str,
    base_us: i64,
    produce: F,
) -> anyhow::Result<u64>
where
    F: FnOnce(&mut Sink) -> anyhow::Result<()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let producer = tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            buf: Vec::with_capacity(CHUNK + (64 << 10)),
            tx,
            first: true,
            rows: 0,
            base_us,
        };
        produce(&mut sink)?;
        sink.flush()?;
        Ok::<u64, anyhow::Error>(sink.rows)
    });
    let statement = format!("COPY {target} FROM STDIN");
    let mut stream = conn
        .copy_in_raw(&statement)
        .await
        .with_context(|| format!("starting {statement}"))?;
    let mut failed = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = stream.send(chunk).await {
            failed = Some(e);
            break;
        }
    }
    // Unblocks a producer still waiting to hand over a chunk.
    drop(rx);
    let produced = producer.await.context("the row producer panicked")?;
    match (failed, produced) {
        (None, Ok(rows)) => {
            let n = stream
                .finish()
                .await
                .with_context(|| format!("finishing {statement}"))?;
            if n != rows {
                anyhow::bail!("{statement}: sent {rows} rows but PostgreSQL took {n}");
            }
            Ok(n)
        }
        (Some(e), _) => {
            let _ = stream.abort("sending failed").await;
            Err(anyhow::Error::new(e).context(format!("sending {statement}")))
        }
        (None, Err(e)) => {
            let _ = stream.abort("the generator failed").await;
            Err(e.context(format!("producing rows for {statement}")))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_match_chrono() {
        for us in [
            0i64,
            1_767_225_600_123_456,
            951_782_400_000_001,
            -86_400_000_000,
            4_102_444_799_999_999,
        ] {
            let mut b = Vec::new();
            push_timestamp(&mut b, us);
            let want = chrono::DateTime::from_timestamp_micros(us)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
                .to_string();
            assert_eq!(String::from_utf8(b).unwrap(), want);
        }
    }

    #[test]
    fn integers_format() {
        for v in [0i64, 7, -3, 1234567890, i64::MIN + 1] {
            let mut b = Vec::new();
            push_int(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }
}
