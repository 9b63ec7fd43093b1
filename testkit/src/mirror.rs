//! A static file server on 127.0.0.1 with a random port, one thread per connection. It
//! records every path requested so tests can assert on what was (not) downloaded, and can
//! answer a path with a redirect, as GitHub does for release downloads. Like a web server
//! hosting a repository, it answers a directory with its `index.html`, as `text/html`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A way to misbehave when serving a path, as real networks and servers do.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Announce the full length, send this many bytes, then reset the connection.
    ResetAfter(usize),
    /// Announce the full length, send this many bytes, then close normally.
    Truncate(usize),
    /// The right length, but every byte flipped.
    Corrupt,
    /// One byte per interval.
    Drip(Duration),
    /// No Content-Length, and this many bytes after the real body.
    Oversize(u64),
}

#[derive(Default)]
struct State {
    requests: Vec<String>,
    redirects: BTreeMap<String, String>,
    /// Per path: faults to apply to the next requests, in order.
    faults: BTreeMap<String, Vec<Fault>>,
    /// Bytes per second each connection is held to, like a real link.
    rate: Option<u64>,
}

pub struct Mirror {
    addr: String,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

impl Mirror {
    /// Serves `root` until dropped.
    pub fn serve(root: impl Into<PathBuf>) -> Mirror {
        let root = root.into();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let (stop, state) = (stop.clone(), state.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (root, state) = (root.clone(), state.clone());
                            std::thread::spawn(move || {
                                let _ = handle(stream, &root, &state);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Mirror {
            addr,
            stop,
            state,
            thread: Some(thread),
        }
    }

    /// The base URL to pass as `--mirror`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The next `times` requests for `path` misbehave as `fault`; later ones are served
    /// normally.
    pub fn fail(&self, path: &str, fault: Fault, times: usize) {
        let mut s = self.state.lock().unwrap();
        let queue = s.faults.entry(path.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Sends every body at `bytes_per_second` per connection from now on.
    pub fn throttle(&self, bytes_per_second: u64) {
        self.state.lock().unwrap().rate = Some(bytes_per_second.max(1));
    }

    /// How many requests asked for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| *r == path).count()
    }

    /// Answers `path` with a 302 to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        self.state
            .lock()
            .unwrap()
            .redirects
            .insert(path.to_owned(), location.to_owned());
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(mut stream: TcpStream, root: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let (redirect, fault, rate) = {
        let mut s = state.lock().unwrap();
        s.requests.push(path.clone());
        let fault = match s.faults.get_mut(&path) {
            Some(q) if !q.is_empty() => Some(q.remove(0)),
            _ => None,
        };
        (s.redirects.get(&path).cloned(), fault, s.rate)
    };
    if let Some(Fault::Status(code)) = fault {
        write!(
            stream,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return stream.shutdown(Shutdown::Both);
    }
    if let Some(location) = redirect {
        write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return stream.shutdown(Shutdown::Both);
    }
    // As a web server does: a directory is answered with its index.html.
    let local = safe_join(root, &percent_decode(&path)).map(|p| match p.is_dir() {
        true => p.join("index.html"),
        false => p,
    });
    let content_type = match local.as_ref().and_then(|p| p.extension()?.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    };
    let file = local.and_then(|p| std::fs::File::open(p).ok());
    match (method, file) {
        ("GET" | "HEAD", Some(mut f)) if f.metadata()?.is_file() => {
            let mut body = Vec::new();
            f.read_to_end(&mut body)?;
            let len = body.len();
            let length_header = match fault {
                Some(Fault::Oversize(_)) => String::new(),
                _ => format!("Content-Length: {len}\r\n"),
            };
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{length_header}Connection: close\r\n\r\n"
            )?;
            if method == "GET" {
                match fault {
                    None | Some(Fault::Status(_)) => match rate {
                        None => stream.write_all(&body)?,
                        Some(rate) => {
                            let start = std::time::Instant::now();
                            let mut sent = 0u64;
                            for chunk in body.chunks(64 * 1024) {
                                stream.write_all(chunk)?;
                                sent += chunk.len() as u64;
                                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                                if let Some(wait) = due.checked_sub(start.elapsed()) {
                                    std::thread::sleep(wait);
                                }
                            }
                        }
                    },
                    Some(Fault::Truncate(n)) => stream.write_all(&body[..n.min(len)])?,
                    Some(Fault::ResetAfter(n)) => {
                        stream.write_all(&body[..n.min(len)])?;
                        stream.flush()?;
                        reset(&stream);
                        return Ok(());
                    }
                    Some(Fault::Corrupt) => {
                        let flipped: Vec<u8> = body.iter().map(|b| !b).collect();
                        stream.write_all(&flipped)?;
                    }
                    Some(Fault::Drip(every)) => {
                        for b in &body {
                            stream.write_all(std::slice::from_ref(b))?;
                            stream.flush()?;
                            std::thread::sleep(every);
                        }
                    }
                    Some(Fault::Oversize(extra)) => {
                        stream.write_all(&body)?;
                        let chunk = vec![0u8; 64 * 1024];
                        let mut left = extra;
                        while left > 0 {
                            let n = left.min(chunk.len() as u64) as usize;
                            if stream.write_all(&chunk[..n]).is_err() {
                                return Ok(());
                            }
                            left -= n as u64;
                        }
                    }
                }
            }
        }
        _ => {
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

/// Closes with a TCP reset (SO_LINGER 0), as a dropped connection looks to the client.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// `%7e` → `~`: apt and browsers escape some characters of file names.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn safe_join(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut out = root.to_owned();
    for c in Path::new(url_path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}
