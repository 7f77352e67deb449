//! The agent's upsd protocol reader (`burst_agent::upsd`): reply lines, UPS names, and the
//! `GET VAR` / `LIST VAR` / `LIST UPS` replies as the real client reads them from a socket.
//!
//! Input: what upsd answers (protocol text, e.g. `VAR ups ups.status "OB DISCHRG"\n`). The same
//! text is also read as a reply line and as a UPS name.
//!
//! The client is the real `UpsdClient` on a loopback connection to a one-shot server that
//! sends the input after the command: `LIST UPS` when the input starts with
//! `BEGIN LIST UPS`, `LIST VAR ups` when it starts with `BEGIN LIST VAR`, else
//! `GET VAR ups ups.status`.
//!
//! Properties:
//! - `split_words`: the words, quoted with `quote` and joined, split back to the same words;
//!   without any `"` in the line, the words are the line split at spaces and tabs;
//! - `UpsName::parse`: a parsed name's canonical form (`Display`) parses back to the same name;
//! - the client's answer (value, map or error kind) equals a plain synchronous reading of the
//!   reply by the protocol's rules (one line per `\n`, `\r` dropped, `ERR <code>` lines are
//!   errors, rows between `BEGIN LIST` and the first `END LIST`, rows of the right width, a
//!   reply cut short is `Closed`).

#![no_main]

use burst_agent::upsd::{UpsName, UpsdClient, UpsdError, quote, split_words};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const UPS: &str = "ups";
const VAR: &str = "ups.status";
/// Generous: the server always answers and closes at once; this only bounds a hang.
const TIMEOUT: Duration = Duration::from_secs(30);

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});
static LISTENER: LazyLock<TcpListener> = LazyLock::new(|| {
    RUNTIME
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port")
});

#[derive(Clone, Copy, Debug)]
enum Command {
    GetVar,
    ListVar,
    ListUps,
}

/// What a command returned, with errors reduced to what can be compared.
#[derive(Debug, PartialEq)]
enum Answer {
    Value(String),
    Map(BTreeMap<String, String>),
    Closed,
    /// `ERR <code>` mapped to its variant (the variant's name or `Err(code)`).
    Refused(String),
    Malformed(String),
}

fn refused(code: &str) -> Answer {
    Answer::Refused(match code {
        "UNKNOWN-UPS" => "UnknownUps".into(),
        "VAR-NOT-SUPPORTED" => "VarNotSupported".into(),
        "DATA-STALE" => "DataStale".into(),
        "DRIVER-NOT-CONNECTED" => "DriverNotConnected".into(),
        other => format!("Err({other})"),
    })
}

fn from_error(e: UpsdError) -> Answer {
    match e {
        UpsdError::Closed => Answer::Closed,
        UpsdError::UnknownUps => refused("UNKNOWN-UPS"),
        UpsdError::VarNotSupported => refused("VAR-NOT-SUPPORTED"),
        UpsdError::DataStale => refused("DATA-STALE"),
        UpsdError::DriverNotConnected => refused("DRIVER-NOT-CONNECTED"),
        UpsdError::Err(code) => Answer::Refused(format!("Err({code})")),
        UpsdError::Malformed(line) => Answer::Malformed(line),
        other => panic!("a complete loopback exchange failed with {other:?}"),
    }
}

/// The protocol's rules, read synchronously from the whole reply.
fn expected(command: Command, reply: &[u8]) -> Answer {
    let mut rest = reply;
    let mut next_line = || -> Result<String, Answer> {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(Answer::Closed)?;
        let mut line = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let line = String::from_utf8_lossy(line).into_owned();
        match line.strip_prefix("ERR ") {
            Some(code) => Err(refused(code.split_whitespace().next().unwrap_or(""))),
            None => Ok(line),
        }
    };
    let words = |line: String| split_words(&line).map_err(|_| Answer::Malformed(line));
    let answer = (|| match command {
        Command::GetVar => {
            let line = next_line()?;
            match words(line.clone())?.as_slice() {
                [v, u, n, value] if v == "VAR" && u == UPS && n == VAR => {
                    Ok(Answer::Value(value.clone()))
                }
                _ => Err(Answer::Malformed(line)),
            }
        }
        Command::ListVar | Command::ListUps => {
            let (what, kind, width, key, value) = match command {
                Command::ListVar => (format!("VAR {UPS}"), "VAR", 4, 2, 3),
                _ => ("UPS".to_string(), "UPS", 3, 1, 2),
            };
            let first = next_line()?;
            if first != format!("BEGIN LIST {what}") {
                return Err(Answer::Malformed(first));
            }
            let mut map = BTreeMap::new();
            loop {
                let line = next_line()?;
                if line == format!("END LIST {what}") {
                    return Ok(Answer::Map(map));
                }
                let w = words(line.clone())?;
                if w.len() != width || w[0] != kind {
                    return Err(Answer::Malformed(line));
                }
                map.insert(w[key].clone(), w[value].clone());
            }
        }
    })();
    answer.unwrap_or_else(|e| e)
}

/// Runs `command` with the real client against a server that answers `reply` and closes.
fn exchange(command: Command, reply: &[u8]) -> Answer {
    let addr = LISTENER.local_addr().expect("bound").to_string();
    RUNTIME.block_on(async {
        let server = async {
            let (socket, _) = LISTENER.accept().await.expect("accept");
            let mut socket = BufReader::new(socket);
            // Read the whole command first: closing with unread input would reset the
            // connection and could drop the reply.
            let mut line = Vec::new();
            socket.read_until(b'\n', &mut line).await.ok();
            let socket = socket.get_mut();
            // The client may stop reading early (a bad line); that is not an error here.
            socket.write_all(reply).await.ok();
            socket.shutdown().await.ok();
        };
        let client = async {
            let mut client = UpsdClient::connect(&addr, TIMEOUT)
                .await
                .expect("connect to loopback");
            match command {
                Command::GetVar => client.get_var(UPS, VAR).await.map(Answer::Value),
                Command::ListVar => client.list_var(UPS).await.map(Answer::Map),
                Command::ListUps => client.list_ups().await.map(Answer::Map),
            }
        };
        let ((), answer) = tokio::join!(server, client);
        answer.unwrap_or_else(from_error)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(words) = split_words(&text) {
        let requoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
        assert_eq!(
            split_words(&requoted.join(" ")).expect("quoted words split"),
            words
        );
        if !text.contains('"') {
            let plain: Vec<&str> = text.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            assert_eq!(words, plain);
        }
    }

    if let Ok(name) = UpsName::parse(&text) {
        assert_eq!(
            UpsName::parse(&name.to_string()),
            Ok(name.clone()),
            "{text:?} → {name}"
        );
    }

    let command = if data.starts_with(b"BEGIN LIST UPS") {
        Command::ListUps
    } else if data.starts_with(b"BEGIN LIST VAR") {
        Command::ListVar
    } else {
        Command::GetVar
    };
    assert_eq!(
        exchange(command, data),
        expected(command, data),
        "{command:?} answered {text:?}"
    );
});
