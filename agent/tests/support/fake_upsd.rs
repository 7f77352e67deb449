//! A tiny upsd impostor for tests that must run without NUT (or that need misbehaviour real
//! upsd will not produce on demand: a reply cut off mid-list, a server that never answers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers like upsd.
    Normal,
    /// Every UPS query answers `ERR <code>`.
    Err(&'static str),
    /// `LIST VAR`: sends BEGIN and one row, then closes the connection. `GET VAR`: closes
    /// without a byte.
    DropMidReply,
    /// Reads commands, never answers.
    Silent,
}

pub struct FakeUpsd {
    pub addr: SocketAddr,
    vars: Arc<Mutex<BTreeMap<String, String>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: JoinHandle<()>,
}

impl Drop for FakeUpsd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpsd {
    /// Serves one UPS named `ups` with `vars`.
    pub async fn start(ups: &str, vars: &[(&str, &str)]) -> FakeUpsd {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake upsd");
        let addr = listener.local_addr().expect("addr");
        let vars = Arc::new(Mutex::new(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ));
        let behaviour = Arc::new(Mutex::new(Behaviour::Normal));
        let (v, b, name) = (vars.clone(), behaviour.clone(), ups.to_string());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (v, b, name) = (v.clone(), b.clone(), name.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let behaviour = *b.lock().unwrap_or_else(|p| p.into_inner());
                        let words: Vec<&str> = line.split_whitespace().collect();
                        let reply = match (behaviour, words.as_slice()) {
                            (_, ["LOGOUT"]) => "OK Goodbye\n".to_string(),
                            (Behaviour::Silent, _) => continue,
                            (Behaviour::DropMidReply, ["LIST", "VAR", u]) => {
                                let _ = write
                                    .write_all(
                                        format!("BEGIN LIST VAR {u}\nVAR {u} ups.status \"OL\"\n")
                                            .as_bytes(),
                                    )
                                    .await;
                                return;
                            }
                            (Behaviour::DropMidReply, _) => return,
                            (_, ["LIST", "UPS"]) => {
                                format!(
                                    "BEGIN LIST UPS\nUPS {name} \"fake \\\"quoted\\\" upsd\"\nEND LIST UPS\n"
                                )
                            }
                            (_, ["GET", "VAR", u, _] | ["LIST", "VAR", u]) if *u != name => {
                                "ERR UNKNOWN-UPS\n".to_string()
                            }
                            (Behaviour::Err(code), _) => format!("ERR {code}\n"),
                            (_, ["GET", "VAR", u, var]) => {
                                match v.lock().unwrap_or_else(|p| p.into_inner()).get(*var) {
                                    Some(value) => format!("VAR {u} {var} \"{value}\"\n"),
                                    None => "ERR VAR-NOT-SUPPORTED\n".to_string(),
                                }
                            }
                            (_, ["LIST", "VAR", u]) => {
                                let mut s = format!("BEGIN LIST VAR {u}\n");
                                for (k, value) in v.lock().unwrap_or_else(|p| p.into_inner()).iter()
                                {
                                    s.push_str(&format!("VAR {u} {k} \"{value}\"\n"));
                                }
                                s.push_str(&format!("END LIST VAR {u}\n"));
                                s
                            }
                            _ => "ERR UNKNOWN-COMMAND\n".to_string(),
                        };
                        if write.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeUpsd {
            addr,
            vars,
            behaviour,
            task,
        }
    }

    /// `ups@127.0.0.1:port`, as upsmon would pass it in UPSNAME.
    pub fn upsname(&self, ups: &str) -> String {
        format!("{ups}@{}", self.addr)
    }

    pub fn set(&self, var: &str, value: &str) {
        self.vars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(var.into(), value.into());
    }

    pub fn behave(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }
}
