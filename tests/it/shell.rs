//! `riffle shell` driven in a pseudo-terminal, as an analyst uses it: a multi-line CREATE, rows
//! inserted, a push query printing rows until Ctrl-C, Tab completion, a syntax error with its
//! caret, `LIMIT`, and the same against a `riffle server`.

use std::io::BufRead;
use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Expect, Session};
use riffle_tests::riffle_bin;

fn shell(args: &[&str], tag: &str) -> expectrl::session::OsSession {
    let history = std::env::temp_dir().join(format!("riffle-history-{tag}-{}", std::process::id()));
    let mut cmd = Command::new(riffle_bin());
    cmd.arg("shell").arg("--history").arg(&history).args(args);
    let mut s = Session::spawn(cmd).expect("the shell starts in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s
}

/// The common session: works the same embedded and against a server.
fn analyst_session(s: &mut expectrl::session::OsSession) {
    s.expect("riffle> ").unwrap();
    // A statement over two lines runs when the `;` arrives.
    s.send_line("CREATE STREAM clicks (user_id STRING KEY, page STRING)")
        .unwrap();
    s.send_line("  WITH (kafka_topic='clicks', value_format='JSON');")
        .unwrap();
    s.expect(expectrl::Regex("[Cc]reated")).unwrap();
    s.send_line("INSERT INTO clicks (user_id, page) VALUES ('u1', '/pricing');")
        .unwrap();
    s.expect("Inserted a row into CLICKS").unwrap();
    s.send_line("SET 'auto.offset.reset'='earliest';").unwrap();
    s.expect("Set auto.offset.reset").unwrap();
    // A push query prints rows as they arrive; Ctrl-C stops it, not the shell.
    s.send_line("SELECT user_id, page FROM clicks EMIT CHANGES;")
        .unwrap();
    s.expect("| PAGE").unwrap();
    s.expect("| /pricing").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.send("\x03").unwrap();
    s.expect("1 row printed.").unwrap();
    s.expect("riffle> ").unwrap();
    // A syntax error shows the line and a caret under the column.
    s.send_line("SELECT * FORM clicks;").unwrap();
    s.expect("syntax error at line 1, column 10").unwrap();
    s.expect("SELECT * FORM clicks;").unwrap();
    s.expect("         ^").unwrap();
    // Tab completes stream names; the shell still works after the error.
    s.send("DESCRIBE CLI\t;\r").unwrap();
    s.expect("USER_ID").unwrap();
    // LIMIT ends a push query by itself.
    s.send_line("SELECT page FROM clicks EMIT CHANGES LIMIT 1;")
        .unwrap();
    s.expect("1 row printed.").unwrap();
    s.send_line("exit").unwrap();
    s.expect(Eof).unwrap();
}

#[test]
fn embedded_shell_session() {
    let mut s = shell(&[], "embedded");
    s.expect("embedded engine").unwrap();
    analyst_session(&mut s);
}

/// Kills the server when the test ends.
struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn shell_against_a_server() {
    let mut child = Command::new(riffle_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--token", "t0k"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().unwrap();
    let _server = ServerProcess(child);
    let mut first = String::new();
    std::io::BufReader::new(stderr)
        .read_line(&mut first)
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_string();
    let mut s = shell(&["--server", &url, "--token", "t0k"], "remote");
    s.expect(format!("connected to {url}").as_str()).unwrap();
    analyst_session(&mut s);
}
