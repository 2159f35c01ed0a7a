//! `make demo`: the plugins change the bundled guests and talk to each
//! other; each step shows the guest lines a plugin changed, before -> after.

use xplugin_tests::guests::{system, user};
use xplugin_tests::{Qemu, Run};

/// A difference between the guest output without a plugin and with it.
#[derive(Debug, PartialEq, Eq)]
enum Change<'a> {
    /// A line whose value the plugin changed: before, after.
    Changed(&'a str, &'a str),
    /// A line only the run with the plugin printed.
    Added(&'a str),
    /// A line only the run without the plugin printed.
    Removed(&'a str),
}

/// What a guest line is about: the text before its value ("cpu 1" in
/// "cpu 1: 100000 calls ...", "is_licensed()" in "is_licensed() = 1, ..."),
/// or the whole line when it has no "name: value" or "name = value" shape.
fn label(line: &str) -> &str {
    match [line.find(": "), line.find(" = ")]
        .into_iter()
        .flatten()
        .min()
    {
        Some(end) => &line[..end],
        None => line,
    }
}

/// `text` with every number replaced by `#`: "syscall 7(5)" and
/// "syscall 7(37)" are the same line with different values.
fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let next_is_digit = text[i + c.len_utf8()..].starts_with(|d: char| d.is_ascii_digit());
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else if !(c == '-' && next_is_digit) {
            out.push(c);
        }
    }
    out
}

/// Lines of `before` and `after` that are equal and in the same order (a
/// longest common subsequence), as index pairs in increasing order.
fn common_lines(before: &[&str], after: &[&str]) -> Vec<(usize, usize)> {
    let (n, m) = (before.len(), after.len());
    // lcs[i][j]: length of the longest common subsequence of before[i..] and after[j..]
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if before[i] == after[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n && j < m {
        if before[i] == after[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Pairs the lines of a stretch where the outputs differ: first lines with
/// the same label, then lines with the same label up to its numbers, each in
/// order; the rest were added or removed.
fn pair_stretch<'a>(removed: &[&'a str], added: &[&'a str], out: &mut Vec<Change<'a>>) {
    let mut partner: Vec<Option<usize>> = vec![None; added.len()];
    let mut taken = vec![false; removed.len()];
    let keys: [fn(&str) -> String; 2] = [|l| label(l).to_owned(), |l| without_numbers(label(l))];
    for key in keys {
        for (a, line) in added.iter().enumerate() {
            if partner[a].is_some() {
                continue;
            }
            let k = key(line);
            if let Some(r) = (0..removed.len()).find(|&r| !taken[r] && key(removed[r]) == k) {
                taken[r] = true;
                partner[a] = Some(r);
            }
        }
    }
    for (a, line) in added.iter().enumerate() {
        out.push(match partner[a] {
            Some(r) => Change::Changed(removed[r], line),
            None => Change::Added(line),
        });
    }
    for (r, line) in removed.iter().enumerate() {
        if !taken[r] {
            out.push(Change::Removed(line));
        }
    }
}

/// What changed from `before` to `after`: equal lines are left out, and a
/// changed line is paired with the line it replaced (same label), not with
/// whatever line happens to be at the same position.
fn changes<'a>(before: &[&'a str], after: &[&'a str]) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let end = (before.len(), after.len());
    for (ci, cj) in common_lines(before, after).into_iter().chain([end]) {
        pair_stretch(&before[i..ci], &after[j..cj], &mut out);
        (i, j) = (ci + 1, cj + 1);
    }
    out
}

fn show_changes(title: &str, before: &Run, after: &Run) {
    println!("\n== {title}");
    // Kernel messages ("[    5.03] reboot: ...") differ in their times only.
    let guest_lines = |run: &Run| -> Vec<String> {
        run.stdout
            .lines()
            .filter(|l| !l.starts_with('['))
            .map(str::to_owned)
            .collect()
    };
    let (old, new) = (guest_lines(before), guest_lines(after));
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    let changed = changes(&old, &new);
    if changed.is_empty() {
        println!("   (the guest printed the same lines)");
    }
    for change in changed {
        match change {
            Change::Changed(was, is) => println!("   {was:<42} ->  {is}"),
            Change::Added(is) => println!("   {:<42} ->  {is}", "(new line)"),
            Change::Removed(was) => println!("   {was:<42} ->  (line gone)"),
        }
    }
    for line in after.log.lines() {
        println!("   [plugin] {line}");
    }
}

fn main() {
    let plain = Qemu::system(system::PATH, 1).run();
    println!("== The bare-metal guest (qemu-system-x86_64), no plugin, 1 vCPU");
    for line in plain.stdout.lines() {
        println!("   {line}");
    }
    // Steps on 4 vCPUs compare with 4 vCPUs: the guest prints a line per vCPU.
    let plain4 = Qemu::system(system::PATH, 4).run();

    let hooked = Qemu::system(system::PATH, 4)
        .plugin(&format!("hook,addr={:#x},ret=1", system::IS_LICENSED))
        .run();
    show_changes(
        "hook: is_licensed() returns 1 and its body never runs (set-PC, 4 vCPUs)",
        &plain4,
        &hooked,
    );

    let injected = Qemu::system(system::PATH, 1)
        .plugin(&format!(
            "injector,pc={:#x},nth=2,reg=rdi:21",
            system::COMPUTE
        ))
        .plugin_copy_of_injector(&format!(
            "pc={:#x},mem={:#x}:4841434b454400",
            system::SHOW,
            system::MESSAGE
        ))
        .run();
    show_changes(
        "injector: rdi on the 2nd call of compute(), and the message buffer",
        &plain,
        &injected,
    );

    let syscall = Qemu::system(system::PATH, 1)
        .plugin(&format!(
            "injector,pc={:#x},reg=rsi:37",
            system::SYSCALL_DISPATCH
        ))
        .run();
    show_changes(
        "injector: the argument the guest's syscall handler sees",
        &plain,
        &syscall,
    );

    let talking = Qemu::system(system::PATH, 4)
        .plugin("block-stats,flag_from=0x100000")
        .plugin("blocks")
        .run();
    show_changes(
        "blocks fires an event per executed block; block-stats subscribes, answers, and calls blocks_fired() (4 vCPUs)",
        &plain4,
        &talking,
    );

    let user_plain = Qemu::user(user::PATH).run();
    let faked = Qemu::user(user::PATH)
        .plugin("syscall-fake,nr=1000,ret=4242")
        .run();
    show_changes(
        "user mode (qemu-x86_64): syscall-fake skips syscall 1000 and returns 4242",
        &user_plain,
        &faked,
    );

    let linux_plain = Qemu::linux(1).run();
    let linux_changed = Qemu::linux(1)
        .plugin("syscall-override,proc=sh,getpid=4242,exit_code=42")
        .plugin("syscalls")
        .run();
    show_changes(
        "Linux guest: the syscalls provider, and syscall-override changing getpid() and exit_group() of sh",
        &linux_plain,
        &linux_changed,
    );

    let failures = [&plain, &plain4, &hooked, &injected, &syscall, &talking]
        .iter()
        .filter(|run| run.code != Some(1))
        .count()
        + [&user_plain, &faked, &linux_plain, &linux_changed]
            .iter()
            .filter(|run| run.code != Some(0))
            .count();
    if failures > 0 {
        eprintln!("demo: {failures} run(s) did not exit as expected");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::{changes, label, without_numbers, Change};

    #[test]
    fn labels_and_numbers() {
        assert_eq!(
            label("cpu 1: 100000 calls of compute(5) summed to 1000000"),
            "cpu 1"
        );
        assert_eq!(
            label("is_licensed() = 0, its body ran 1 times"),
            "is_licensed()"
        );
        assert_eq!(label("no value here"), "no value here");
        assert_eq!(without_numbers("syscall 7(37)"), "syscall #(#)");
        assert_eq!(without_numbers("returned -38"), "returned #");
        assert_eq!(without_numbers("a-b 12 -3"), "a-b # #");
    }

    #[test]
    fn equal_outputs_have_no_changes() {
        let lines = ["a: 1", "b: 2"];
        assert_eq!(changes(&lines, &lines), vec![]);
        assert_eq!(changes(&[], &[]), vec![]);
    }

    /// Issue 13: a run on more vCPUs prints more lines; the summary line
    /// pairs with the summary line, not with whatever is at its position.
    #[test]
    fn more_lines_pair_by_label_not_position() {
        let before = [
            "cpu 0: 100000 calls of compute(5) summed to 1000000",
            "vCPUs that ran the workload: 1 of 1",
        ];
        let after = [
            "cpu 0: 100000 calls of compute(5) summed to 1000000",
            "cpu 1: 100000 calls of compute(5) summed to 1000000",
            "vCPUs that ran the workload: 2 of 2",
        ];
        assert_eq!(
            changes(&before, &after),
            vec![
                Change::Added("cpu 1: 100000 calls of compute(5) summed to 1000000"),
                Change::Changed(
                    "vCPUs that ran the workload: 1 of 1",
                    "vCPUs that ran the workload: 2 of 2"
                ),
            ]
        );
    }

    #[test]
    fn changed_values_pair_with_their_line() {
        let before = [
            "is_licensed() = 0, its body ran 1 times",
            "call 1: compute(5) = 25",
            "call 2: compute(5) = 25",
            "message: hello",
            "syscall 7(5) = 12",
        ];
        let after = [
            "is_licensed() = 1, its body ran 0 times",
            "call 1: compute(5) = 25",
            "call 2: compute(5) = 441",
            "message: HACKED",
            "syscall 7(37) = 44",
        ];
        assert_eq!(
            changes(&before, &after),
            vec![
                Change::Changed(before[0], after[0]),
                Change::Changed(before[2], after[2]),
                Change::Changed(before[3], after[3]),
                Change::Changed(before[4], after[4]),
            ]
        );
    }

    #[test]
    fn unrelated_lines_are_added_and_removed() {
        let before = ["x: 1", "gone"];
        let after = ["x: 1", "new: 2", "syscall(1000) returned 4242"];
        assert_eq!(
            changes(&before, &after),
            vec![
                Change::Added("new: 2"),
                Change::Added("syscall(1000) returned 4242"),
                Change::Removed("gone"),
            ]
        );
        // A label-less line with a changed number is the same line.
        assert_eq!(
            changes(
                &["syscall(1000) returned -38"],
                &["syscall(1000) returned 4242"]
            ),
            vec![Change::Changed(
                "syscall(1000) returned -38",
                "syscall(1000) returned 4242"
            )]
        );
    }

    #[test]
    fn same_labels_pair_in_order() {
        let before = ["workload: start", "pid: 1", "workload: done"];
        let after = ["workload: begin", "pid: 1", "workload: end"];
        assert_eq!(
            changes(&before, &after),
            vec![
                Change::Changed("workload: start", "workload: begin"),
                Change::Changed("workload: done", "workload: end"),
            ]
        );
    }
}
