//! Child processes of a test: their output (stderr, or both pipes) and their listening port.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Collects `child`'s piped stderr, line by line, into a shared string (for
/// assertions on its log and for failure messages). Panics when stderr was
/// not piped.
pub fn capture_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    collect_lines(child.stderr.take().expect("stderr piped"), &log, "test-stderr");
    log
}

/// [`capture_stderr`] for a child that writes to both pipes (a program
/// that logs to stdout): stderr and stdout lines go into one shared string,
/// each line whole, in the order they arrive. Panics when either was not
/// piped.
pub fn capture_output(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    collect_lines(child.stderr.take().expect("stderr piped"), &log, "test-stderr");
    collect_lines(child.stdout.take().expect("stdout piped"), &log, "test-stdout");
    log
}

/// Appends each line of `pipe` to `log` on a thread of its own until the pipe closes.
fn collect_lines(pipe: impl Read + Send + 'static, log: &Arc<Mutex<String>>, thread: &str) {
    let sink = Arc::clone(log);
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
        .expect("spawn the output reader");
}

/// Waits until `127.0.0.1:port` accepts a connection; panics naming `what`
/// after `timeout`.
pub fn wait_listening(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `child`, a server started to listen on `127.0.0.1:port`,
/// accepts a connection; panics naming `what` when the child exits first
/// (with its exit status) or after `timeout`.
pub fn wait_child_listening(child: &mut Child, port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on 127.0.0.1:{port}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn stderr_lines_are_collected_in_order() {
        let mut child =
            Command::new("sh").args(["-c", "echo one >&2; echo two >&2"]).stderr(Stdio::piped()).spawn().unwrap();
        let log = capture_stderr(&mut child);
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.lock().unwrap().as_str() != "one\ntwo\n" {
            assert!(Instant::now() < deadline, "got {:?}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn both_pipes_are_collected_line_by_line() {
        let mut child = Command::new("sh")
            .args(["-c", "echo out-1; echo err-1 >&2; echo out-2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = capture_output(&mut child);
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut lines: Vec<String> = log.lock().unwrap().lines().map(str::to_owned).collect();
            lines.sort();
            if lines == ["err-1", "out-1", "out-2"] {
                break;
            }
            assert!(Instant::now() < deadline, "got {lines:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = log.lock().unwrap().clone();
        assert!(text.find("out-1") < text.find("out-2"), "one pipe's lines keep their order: {text:?}");
    }

    #[test]
    #[should_panic(expected = "nothing did not listen")]
    fn a_port_nobody_listens_on_panics_with_its_name() {
        let port = crate::port::free_port();
        wait_listening(port, "nothing", Duration::from_millis(200));
    }

    #[test]
    #[should_panic(expected = "quitter exited with exit status: 3 before listening")]
    fn a_child_that_exits_before_listening_panics_with_its_status() {
        let port = crate::port::free_port();
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        wait_child_listening(&mut child, port, "quitter", Duration::from_secs(10));
    }

    #[test]
    fn a_listening_child_is_waited_for() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        wait_child_listening(&mut child, port, "sleeper", Duration::from_secs(10));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
