//! The data plane comes first: `Workers::lower_helpers` puts the process's
//! other threads below the workers and the caller, and leaves those alone.
//! One test in a binary of its own, since it lowers every thread of the
//! process it runs in.
#![cfg(target_os = "linux")]

use std::sync::mpsc;

use faregate_gateway::{HELPER_NICE, Workers};

/// Every thread of this process: its id, its name (at most 15 bytes) and
/// its nice value (the 19th field of its stat; the name field, in
/// parentheses, may hold spaces).
fn threads() -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = entry.unwrap().path();
        let tid = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue; // ended meanwhile
        };
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_owned();
        let nice = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        out.push((tid, name, nice));
    }
    out
}

fn nice_of(name: &str) -> Vec<i32> {
    threads()
        .into_iter()
        .filter(|(_, n, _)| n == name)
        .map(|(_, _, nice)| nice)
        .collect()
}

/// This thread's id, from /proc/thread-self (a link to PID/task/TID).
fn my_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_string_lossy().into_owned()
}

/// A thread named `name` that lives until the returned sender is dropped.
fn park(name: &str) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let (up, is_up) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            up.send(()).unwrap();
            let _ = stopped.recv();
        })
        .unwrap();
    is_up.recv().unwrap();
    (stop, handle)
}

#[test]
fn helper_threads_run_below_the_workers_and_the_caller() {
    let me = my_tid();
    let base = threads().into_iter().find(|(t, _, _)| *t == me).unwrap().2;
    let lowered_to = (base + HELPER_NICE).min(19);
    assert!(
        lowered_to > base,
        "the tests run at nice 19 already: nothing to show"
    );

    // Started before the call, as SQLite's connection threads and the
    // access-log writer are.
    let (stop_helper, helper) = park("test-helper");
    let workers = Workers::start(2).unwrap();

    let lowered = workers.lower_helpers().unwrap();
    assert!(lowered >= 1, "lowered {lowered} threads");
    assert_eq!(nice_of("test-helper"), [lowered_to]);
    // Thread names are cut at 15 bytes: "faregate-worker-N" reads so.
    assert_eq!(
        nice_of("faregate-worker"),
        [base, base],
        "the workers keep theirs"
    );
    let caller = threads().into_iter().find(|(t, _, _)| *t == me).unwrap().2;
    assert_eq!(
        caller, base,
        "the caller (the accept loops) keeps its priority"
    );

    // A second call changes nothing: the helper is low enough already.
    assert_eq!(workers.lower_helpers().unwrap(), 0);
    assert_eq!(nice_of("test-helper"), [lowered_to]);

    // A thread started afterwards takes its parent's priority.
    let (stop_late, late) = park("test-late");
    assert_eq!(nice_of("test-late"), [base]);

    drop((stop_helper, stop_late));
    helper.join().unwrap();
    late.join().unwrap();
    workers.join();
}
