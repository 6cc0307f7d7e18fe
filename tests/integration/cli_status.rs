//! `selfheal status`: columns aligned whatever the length of names and states.

use crate::cli_util::cli;
use crate::sup_util::{start, SOON};

#[test]
fn columns_align_with_a_40_character_name() {
    let long = "a_program_name_of_exactly_forty_chars_xy";
    assert_eq!(long.len(), 40);
    let sup = start(
        "",
        &format!(
            "[programs.{long}]\ncommand = [\"sleep\", \"infinity\"]\n[programs.b]\ncommand = [\"sleep\", \"infinity\"]\n"
        ),
    );
    sup.wait_state(long, "running", SOON);
    sup.wait_state("b", "running", SOON);
    let out = cli(&sup, &["stop", "b"]);
    assert_eq!(out.code, 0, "{out}");
    let out = cli(&sup, &["status"]);
    assert_eq!(out.code, 3, "{out}");
    let lines: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{out}");
    // Every cell starts where its header does (left-aligned columns) or ends
    // where it does (right-aligned numbers).
    let header = lines[0];
    let starts = |word: &str| header.find(word).unwrap();
    let ends = |word: &str| header.find(word).unwrap() + word.len();
    for line in &lines[1..] {
        let state = &line[starts("STATE")..];
        assert!(
            state.starts_with("running") || state.starts_with("stopped"),
            "{line:?}\n{}",
            out.stdout
        );
        assert_eq!(&line[starts("STATE") - 1..starts("STATE")], " ", "{line:?}");
        let restarts_end = ends("RESTARTS");
        assert!(
            line[..restarts_end].ends_with('0'),
            "RESTARTS not right-aligned: {line:?}\n{}",
            out.stdout
        );
        assert_eq!(&line[starts("LAST EXIT") - 1..starts("LAST EXIT")], " ");
    }
    assert!(lines[1].starts_with(long), "{}", out.stdout);
}
