//! `examples/shop/CURL.md` is a session a reader pastes: this test pastes it. Every
//! `console` block's commands run, in order, in `bash` with the real `curl` against the
//! shop (started on free ports, which replace 8080 and 8081), and every answer line the file
//! shows must be in what curl printed. Values that differ from run to run (tokens, session
//! IDs) are compared by shape; a variable the reader copies from an answer
//! (`HANDOFF='…'`, `COOKIE='…'`) is taken from the real answer, as the reader would.
//!
//! Without `curl` or `bash` the test says so and passes, unless `CI=true`.

mod support;

use std::process::Command;

use support::ShopProcess;

/// One `$ ` command of a console block and the lines the file shows after it.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
}

fn steps(markdown: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut continuing = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_console = line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if continuing {
            let step = steps.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(line);
            continuing = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                shown: Vec::new(),
            });
            continuing = command.ends_with('\\');
        } else if let Some(step) = steps.last_mut() {
            step.shown.push(line.to_owned());
        }
    }
    steps
}

/// Runs of 20 or more base64url characters (tokens, session IDs) become `<…>`.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 20 {
            out.push_str("<…>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `NAME='literal'` copied from a shown answer: the same part of the real answer.
fn copied(literal: &str, shown: &[String], printed: &str) -> Option<String> {
    let line = shown.iter().find(|l| l.contains(literal))?;
    let (name, value) = line.split_once(": ")?;
    let start = value.find(literal)?;
    let end = value[start + literal.len()..].chars().next();
    let real = printed.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })?;
    let real = real.get(start..)?;
    Some(match end {
        Some(term) => real.split(term).next().unwrap_or(real).to_owned(),
        None => real.to_owned(),
    })
}

fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run bash");
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_of_curl_md_answers_as_shown() {
    if !have("curl") || !have("bash") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: curl and bash are needed"
        );
        eprintln!("curl or bash not found: skipping the CURL.md walk-through");
        return;
    }
    let shop = ShopProcess::start(&[]);
    let (origin, cache) = (shop.origin_port(), shop.cache_port());
    let ports = |text: &str| {
        text.replace(":8080", &format!(":{origin}"))
            .replace("%3A8080", &format!("%3A{origin}"))
            .replace(":8081", &format!(":{cache}"))
    };
    let markdown = ports(include_str!("../examples/shop/CURL.md"));
    let steps = steps(&markdown);
    assert!(steps.len() >= 12, "{steps:#?}");

    let mut assignments = String::new();
    let mut last_shown: Vec<String> = Vec::new();
    let mut last_printed = String::new();
    let mut mismatches = Vec::new();
    for step in &steps {
        let assignment = step.command.split_once('=').filter(|(name, _)| {
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        });
        if let Some((name, rhs)) = assignment {
            let literal = rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\''));
            let value = match literal.and_then(|l| copied(l, &last_shown, &last_printed)) {
                Some(real) => real,
                None => bash(&format!(
                    "{assignments}{name}={rhs}\nprintf '%s' \"${name}\""
                )),
            };
            assert!(!value.is_empty(), "{name} came out empty");
            assignments.push_str(&format!("{name}={}\n", single_quoted(&value)));
            continue;
        }
        let printed = bash(&format!("{assignments}{}", step.command));
        let printed_shape = shape(&printed);
        for line in step.shown.iter().filter(|l| !l.trim().is_empty()) {
            let mut rest = printed_shape.as_str();
            let found = shape(line)
                .split('…')
                .filter(|p| !p.is_empty())
                .all(|piece| match rest.find(piece) {
                    Some(i) => {
                        rest = &rest[i + piece.len()..];
                        true
                    }
                    None => false,
                });
            if !found {
                mismatches.push(format!(
                    "$ {}\n  shown:   {line}\n  printed:\n{printed}",
                    step.command
                ));
            }
        }
        last_shown = step.shown.clone();
        last_printed = printed;
    }
    assert!(
        mismatches.is_empty(),
        "examples/shop/CURL.md differs from the shop ({} lines):\n{}\nshop log:\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        shop.log()
    );
}
