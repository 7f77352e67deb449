//! `func-emulator drill` from the command line: virtual drills through the engine, the swarm,
//! and what a real-time drill refuses.

use std::process::{Command, Output};

fn emulator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("func-emulator runs")
}

/// `text` written as `name` in a fresh temp dir: the dir (keep it) and the file's path.
fn scenario(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write the scenario");
    let path = path.to_str().expect("utf-8").to_string();
    (dir, path)
}

/// Runs `args`, checks the exit code and that the output says `wanted`; returns the output.
fn expect(args: &[&str], code: i32, wanted: &str) -> String {
    let out = emulator(args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    assert!(t.contains(wanted), "no {wanted:?} in {t}");
    t
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_wrong_expectation_fails_the_drill() {
    let (_dir, p) = scenario(
        "wrong.toml",
        "name = 'wrong'\nduration = '30m'\n[[at]]\nt = '5m'\nups = 'ONBATT'\n[[expect]]\nat = '20m'\nmode = 'healthy'\n",
    );
    expect(
        &["drill", "--virtual", &p],
        1,
        "mode = \"healthy\", got \"outage\"",
    );
}

#[test]
fn faults_run_virtually_and_are_refused_in_real_time() {
    let (_dir, p) = scenario(
        "crash.toml",
        "name = 'crash'\nduration = '40m'\n[[at]]\nt = '12m'\ncrash = 'after_save'\n[[at]]\nt = '10m'\nups = 'ONBATT'\n[[expect]]\nat = '30m'\nmode = 'outage'\ncapacity = 2\n",
    );
    expect(
        &["drill", "--virtual", &p],
        0,
        "the function process dies (after a save, before its actions)",
    );
    expect(
        &["drill", &p],
        1,
        "uses crash, which only virtual drills carry out",
    );
}

#[test]
fn an_unknown_field_names_the_file_and_field() {
    let (_dir, p) = scenario(
        "typo.toml",
        "name = 'typo'\nduration = '30m'\n[[at]]\nt = '5m'\narm_timeout = 2\n",
    );
    let t = expect(&["drill", "--virtual", &p], 2, "arm_timeout");
    assert!(t.contains("typo.toml"), "{t}");
}

#[test]
fn a_small_swarm_holds_every_rule_and_sums_up_in_one_line() {
    let t = expect(
        &["drill", "--swarm", "3", "--seed", "11"],
        0,
        "every rule held",
    );
    let line = t
        .lines()
        .find(|l| l.starts_with("swarm: 3 scenarios"))
        .unwrap_or_else(|| panic!("no summary line in {t}"));
    assert!(line.contains("every rule held"), "{line}");
    assert!(line.contains("scenario-hours per CPU-second"), "{line}");
}
