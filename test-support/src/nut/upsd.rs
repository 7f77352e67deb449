//! Just enough of the upsd network protocol to drive a test stack: one command, one reply
//! line (or a `LIST` up to its `END LIST`), every read bounded in time.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::NutError;
use super::files::nut_quote;

/// Bound on connecting and on each reply.
const REPLY_LIMIT: Duration = Duration::from_secs(5);

/// One session with upsd on 127.0.0.1.
#[derive(Debug)]
pub struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    port: u16,
}

impl Session {
    pub async fn connect(port: u16) -> Result<Session, NutError> {
        let stream = tokio::time::timeout(REPLY_LIMIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .map_err(|_| NutError::new(format!("upsd on 127.0.0.1:{port}: connect timed out")))?
            .map_err(|e| NutError::new(format!("upsd on 127.0.0.1:{port}: {e}")))?;
        let (r, w) = stream.into_split();
        Ok(Session {
            reader: BufReader::new(r),
            writer: w,
            port,
        })
    }

    async fn read_line(&mut self, after: &str) -> Result<String, NutError> {
        let mut line = String::new();
        let n = tokio::time::timeout(REPLY_LIMIT, self.reader.read_line(&mut line))
            .await
            .map_err(|_| self.error(after, "no reply"))?
            .map_err(|e| self.error(after, &e.to_string()))?;
        if n == 0 {
            return Err(self.error(after, "connection closed"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn error(&self, command: &str, what: &str) -> NutError {
        NutError::new(format!(
            "upsd on 127.0.0.1:{} after {command:?}: {what}",
            self.port
        ))
    }

    /// Sends one command line and returns upsd's one-line reply (`ERR ...` included).
    pub async fn command(&mut self, line: &str) -> Result<String, NutError> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| self.error(line, &e.to_string()))?;
        self.read_line(line).await
    }

    /// Like [`command`](Session::command), but an `ERR` reply is an error.
    pub async fn expect_ok(&mut self, line: &str) -> Result<String, NutError> {
        let reply = self.command(line).await?;
        if reply.starts_with("ERR") {
            // Never show the password.
            let shown = if line.starts_with("PASSWORD") {
                "PASSWORD ..."
            } else {
                line
            };
            return Err(self.error(shown, &reply));
        }
        Ok(reply)
    }

    /// A `LIST ...` command: the lines between `BEGIN LIST` and `END LIST`.
    pub async fn list(&mut self, line: &str) -> Result<Vec<String>, NutError> {
        let first = self.expect_ok(line).await?;
        if !first.starts_with("BEGIN LIST") {
            return Err(self.error(line, &format!("unexpected reply {first:?}")));
        }
        let mut out = Vec::new();
        loop {
            let l = self.read_line(line).await?;
            if l.starts_with("END LIST") {
                return Ok(out);
            }
            out.push(l);
        }
    }

    /// `GET VAR ups var`: the value, unquoted.
    pub async fn get_var(&mut self, ups: &str, var: &str) -> Result<String, NutError> {
        let command = format!("GET VAR {ups} {var}");
        let reply = self.expect_ok(&command).await?;
        let prefix = format!("VAR {ups} {var} ");
        reply
            .strip_prefix(&prefix)
            .and_then(unquote)
            .ok_or_else(|| self.error(&command, &format!("unexpected reply {reply:?}")))
    }

    /// Logs in as `user` and sets `var` (the driver applies it on its next poll).
    pub async fn set_var(
        &mut self,
        (user, password): (&str, &str),
        ups: &str,
        var: &str,
        value: &str,
    ) -> Result<(), NutError> {
        self.expect_ok(&format!("USERNAME {user}")).await?;
        self.expect_ok(&format!("PASSWORD {password}")).await?;
        self.expect_ok(&format!("SET VAR {ups} {var} {}", nut_quote(value)))
            .await?;
        Ok(())
    }

    /// Ends the session politely (errors do not matter any more).
    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT").await;
    }
}

/// A double-quoted protocol string, unescaped.
pub fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_undoes_nut_quote() {
        for s in ["OL", "OB DISCHRG", r#"a "b" \ c"#, ""] {
            assert_eq!(unquote(&nut_quote(s)).as_deref(), Some(s));
        }
        assert_eq!(unquote("OL"), None);
        assert_eq!(unquote(r#""dangling\""#), None);
    }

    /// A one-connection stand-in that answers each line from a script.
    async fn scripted(
        replies: &'static [&'static str],
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            let mut got = Vec::new();
            for reply in replies {
                let Ok(Some(l)) = lines.next_line().await else {
                    break;
                };
                got.push(l);
                w.write_all(reply.as_bytes()).await.expect("write");
            }
            got
        });
        (port, task)
    }

    #[tokio::test]
    async fn set_var_logs_in_and_quotes_the_value() {
        let (port, task) = scripted(&["OK\n", "OK\n", "OK\n"]).await;
        let mut s = Session::connect(port).await.expect("connect");
        s.set_var(("u", "p"), "dummy", "ups.status", "OB DISCHRG")
            .await
            .expect("set");
        drop(s);
        assert_eq!(
            task.await.expect("task"),
            [
                "USERNAME u",
                "PASSWORD p",
                "SET VAR dummy ups.status \"OB DISCHRG\""
            ]
        );
    }

    #[tokio::test]
    async fn errors_name_the_command_but_never_the_password() {
        let (port, _task) = scripted(&["OK\n", "ERR INVALID-PASSWORD\n"]).await;
        let mut s = Session::connect(port).await.expect("connect");
        let err = s
            .set_var(("u", "secret"), "dummy", "ups.status", "OL")
            .await
            .expect_err("an error")
            .to_string();
        assert!(err.contains("ERR INVALID-PASSWORD"), "{err}");
        assert!(err.contains("PASSWORD ..."), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[tokio::test]
    async fn get_var_and_list() {
        let (port, _task) = scripted(&[
            "VAR dummy ups.status \"OB LB\"\n",
            "BEGIN LIST UPS\nUPS dummy \"d\"\nEND LIST UPS\n",
            "ERR UNKNOWN-UPS\n",
        ])
        .await;
        let mut s = Session::connect(port).await.expect("connect");
        assert_eq!(
            s.get_var("dummy", "ups.status").await.expect("get"),
            "OB LB"
        );
        assert_eq!(s.list("LIST UPS").await.expect("list"), ["UPS dummy \"d\""]);
        let err = s
            .get_var("nosuch", "ups.status")
            .await
            .expect_err("an error")
            .to_string();
        assert!(
            err.contains("GET VAR nosuch ups.status") && err.contains("ERR UNKNOWN-UPS"),
            "{err}"
        );
    }
}
