//! The session pool: with 2 sessions, two requests run the model at the same
//! time (regression: one session behind a mutex made concurrent requests
//! queue, so throughput stayed flat with clients).

use std::sync::mpsc;
use std::time::Duration;

use service_kit::assets;
use service_kit::onnx::{Model, Threads};

#[test]
fn two_sessions_run_two_requests_at_once() {
    let model = Model::load(
        &assets::embedding_model(),
        Threads::for_cpus(1, Some(2), Some(1)),
    )
    .unwrap();
    let (a_in, a_seen) = mpsc::channel();
    let (b_in, b_seen) = mpsc::channel();
    std::thread::scope(|s| {
        let m = &model;
        let first = s.spawn(move || {
            m.with_session(|_| {
                a_in.send(()).unwrap();
                // still holding the first session: the second request must
                // get the other one
                Ok(b_seen.recv_timeout(Duration::from_secs(20)).is_ok())
            })
            .unwrap()
            .0
        });
        a_seen.recv().unwrap();
        let second = s.spawn(move || {
            m.with_session(|_| {
                b_in.send(()).unwrap();
                Ok(())
            })
            .unwrap()
        });
        assert!(
            first.join().unwrap(),
            "the second request did not get a session while the first held one"
        );
        second.join().unwrap();
    });
}

#[test]
fn one_session_is_shared_in_turn() {
    let model = Model::load(
        &assets::embedding_model(),
        Threads::for_cpus(1, Some(1), Some(1)),
    )
    .unwrap();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| model.with_session(|_| Ok(())).unwrap());
        }
    });
}
