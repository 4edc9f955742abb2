//! Runs the built `porwatch` binary on traces written with the encoder.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use porwatch::sample;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_porwatch");

/// Writes `bytes` to a fresh file under the test tmp dir.
fn trace_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("porwatch-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.pwt", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("porwatch runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The sample trace is intact but records a failed run (a hyp panic and an
/// UNDEF porwatch injected): `decode` exits 5.
#[test]
fn sample_trace_json() {
    let path = trace_file("clean", &sample::trace());
    let o = run(&["decode", "--json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "stderr: {}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), sample::records().len() + 1);
    for (v, r) in lines.iter().zip(sample::records()) {
        assert_eq!(v["v"], 1);
        assert_eq!(v["event"], r.event.kind_name());
        assert_eq!(v["seq"], r.seq);
        assert_eq!(v["ts"], r.ts);
        assert!(v["time"].is_number());
    }
    assert_eq!(lines[0]["poe_mode"], "virtual");
    assert_eq!(lines[5]["esr"], format!("{:#x}", sample::ESR_MRS_POR_EL0));
    assert_eq!(lines[5]["ec"], "SYS64");
    assert_eq!(lines[5]["esr_detail"], "MRS x3, POR_EL0");
    assert_eq!(lines[7]["function_name"], "PSCI_VERSION");
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["trace_intact"], true);
    assert_eq!(summary["problems"], serde_json::json!(["hyp_failed", "undef_injected"]));
    assert_eq!(summary["undefs_injected"], 1);
    assert_eq!(summary["first_undef_seq"], 6);
    assert_eq!(summary["clean"], false);
    assert_eq!(summary["records"], 16);
    assert_eq!(summary["hyp_dropped"], 3);
}

#[test]
fn sample_trace_text_from_stdin() {
    let mut child = Command::new(BIN)
        .args(["decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&sample::trace()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(5), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 16);
    assert!(out.starts_with("[    1.000000] cpu0 #0 header "), "{out}");
    assert!(out.contains("esr=0x6238e865 (SYS64 MRS x3, POR_EL0)"), "{out}");
    assert!(out.contains("message=\"hyp/src/trap.rs:120: unexpected \\\"ESR\\\"\""), "{out}");
    let err = stderr(&o);
    assert!(err.contains("13 records"), "{err}");
    assert!(err.contains("; NOT CLEAN: hypervisor failed, UNDEF injected\n"), "{err}");
    // The first UNDEF, its ESR decoded.
    assert!(
        err.contains("porwatch: UNDEF injected 1 time(s): ")
            && err.contains("first: [    1.018000] cpu0 #6 unknown_trap esr=0x2000000 (UNKNOWN)"),
        "{err}"
    );
    // Absent FILE also means stdin; no input at all is no records (3).
    let o = Command::new(BIN).arg("decode").stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("[no records] the input (0 bytes) held no trace record"), "{}", stdout(&o));
}

/// A clean run's trace: header, a trap, the guest's exit.
fn clean_records() -> Vec<porwatch_trace::Record<'static>> {
    use porwatch_trace::{Event, Record};
    let s = sample::records();
    vec![
        s[0],
        Record {
            cpu: 0,
            seq: 1,
            ts: s[0].ts + 10,
            event: Event::Trap { esr: 0x5a00_0000, elr: 0x4400_1000, outcome: 0 },
        },
        Record { cpu: 0, seq: 2, ts: s[0].ts + 20, event: Event::GuestExit { reason: 2, code: 0 } },
    ]
}

#[test]
fn a_clean_trace_exits_0() {
    let path = trace_file("really-clean", &sample::encode(&clean_records()).unwrap());
    let o = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).ends_with("; guest exit test_exit code 0; clean\n"), "{}", stderr(&o));
}

#[test]
fn empty_and_all_zero_traces_have_no_records_and_exit_3() {
    for (name, bytes) in [("empty", vec![]), ("zeros", vec![0u8; 10_000])] {
        let path = trace_file(name, &bytes);
        let o = run(&["decode", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains("[no records]"), "{name}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("0 records") && stderr(&o).ends_with("NOT CLEAN: no records\n"),
            "{name}"
        );
        let o = run(&["decode", "--json", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3));
        let lines = json_lines(&o);
        assert_eq!(lines[0]["event"], "no_records", "{name}");
        assert_eq!(lines[0]["bytes"], bytes.len());
        assert_eq!(lines[1]["problems"], serde_json::json!(["no_records"]));
        assert_eq!(lines[1]["clean"], false);
    }
}

/// Issue #12's forged frames: after a clean run, a restart header with seq
/// 0, a fake hazard and a `dropped` — each a valid frame.
#[test]
fn a_forged_restart_header_is_never_clean() {
    use porwatch_trace::{Event, Record};
    let mut recs = clean_records();
    let fake_hazard = Event::Hazard {
        va: 0xffff_0000_4403_2198,
        ipa: 0x4403_2198,
        level: 3,
        half: 1,
        old: 1 << 60,
        new: 0,
        pc: 0x4400_18c4,
        por: 0x17,
        poindex: 1,
        perm: 1,
        unprivileged: 0,
        entry_seq: 0,
        por_seq: 0,
        action: 0,
        leaf_level: 3,
        pir: 0,
        trace_seq: 0,
        entry_trace_seq: 0,
    };
    recs.push(Record { cpu: 0, seq: 0, ..sample::records()[0] });
    recs.push(Record { cpu: 0, seq: 1, ts: 5, event: fake_hazard });
    recs.push(Record { cpu: 0, seq: 3, ts: 6, event: Event::Dropped { count: 1 } });
    let path = trace_file("forged", &sample::encode(&recs).unwrap());
    let o = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("[header] a header record (#0, frame at byte "), "{out}");
    assert!(out.contains("[gap] cpu0 seq went backwards: expected #3, got #0"), "{out}");
    let err = stderr(&o);
    assert!(err.contains("; mid-stream headers 1;"), "{err}");
    assert!(err.contains("; NOT CLEAN: unexplained gaps, mid-stream header\n"), "{err}");
    assert!(!err.contains("; clean"), "{err}");
    let o = run(&["decode", "--json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let lines = json_lines(&o);
    assert!(lines.iter().any(|l| l["event"] == "mid_stream_header" && l["seq"] == 0), "{}", stdout(&o));
    let summary = lines.last().unwrap();
    assert_eq!(summary["mid_stream_headers"], 1);
    assert_eq!(summary["trace_intact"], false);
}

#[test]
fn an_unterminated_tail_of_any_length_exits_3() {
    for len in [1usize, 319, 320, 321, 5000] {
        let mut bytes = sample::encode(&clean_records()).unwrap();
        bytes.extend(std::iter::repeat_n(0x5au8, len));
        let path = trace_file(&format!("tail-{len}"), &bytes);
        let o = run(&["decode", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{len}: {}", stderr(&o));
        assert!(stdout(&o).contains(&format!("[truncated] input ended {len} bytes into a frame")), "{len}");
        assert!(stderr(&o).contains("truncated tail yes"), "{len}");
    }
}

/// An intact trace recording a failed run: an UNDEF porwatch injected
/// (shown by --hazards-only, named in the summary), tables unwatched.
#[test]
fn undef_injected_and_tracker_overflow_exit_5() {
    use porwatch_trace::{Event, Record};
    let mut recs = clean_records();
    let exit = recs.pop().unwrap();
    recs.push(Record {
        cpu: 0,
        seq: 2,
        ts: exit.ts,
        event: Event::UnknownTrap { esr: 0x6234_d028, elr: 0x4400_1234, far: 0, action: 2 },
    });
    recs.push(Record { cpu: 0, seq: 3, ..exit });
    let path = trace_file("undef", &sample::encode(&recs).unwrap());
    let o = run(&["decode", "--hazards-only", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("#2 unknown_trap esr=0x6234d028 (SYS64 MSR S3_3_C4_C4_2, x1)")
            && out.ends_with("action=undef_injected\n"),
        "{out}"
    );
    let err = stderr(&o);
    assert!(err.contains("NOT CLEAN: UNDEF injected\n"), "{err}");
    assert!(
        err.contains("UNDEF injected 1 time(s)")
            && err.contains("first: ")
            && err.contains("#2 unknown_trap"),
        "{err}"
    );

    let pt = Event::PtStats {
        tables: 4096,
        max_tables: 4096,
        table_writes: 10,
        stores: 10,
        hazards: 0,
        coverage_gaps: 523,
        roots_dropped: 0,
        overflows: 523,
        roots_released: 0,
        fast_stores: 0,
        mops_steps: 0,
        stepped_stores: 0,
        released_pages: 0,
        leaves_opened: 0,
    };
    let mut recs = clean_records();
    let exit = recs.pop().unwrap();
    recs.push(Record { cpu: 0, seq: 2, ts: exit.ts, event: pt });
    recs.push(Record { cpu: 0, seq: 3, ..exit });
    let path = trace_file("overflow", &sample::encode(&recs).unwrap());
    let o = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("; tables unwatched 523;") && err.contains("NOT CLEAN: tables unwatched"), "{err}");
    assert!(err.contains("523 page-table page(s) not watched (pt_stats.overflows"), "{err}");
    // A damaged trace with the same: 3 wins.
    let mut bytes = sample::encode(&recs).unwrap();
    bytes.truncate(bytes.len() - 2);
    let path = trace_file("overflow-cut", &bytes);
    assert_eq!(run(&["decode", path.to_str().unwrap()]).status.code(), Some(3));
}

#[test]
fn garbled_trace_exits_3_and_reports() {
    let mut bytes = sample::trace();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x21;
    bytes[mid + 1] ^= 0x80;
    let path = trace_file("garbled", &bytes);
    let o = run(&["decode", "--json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    let lines = json_lines(&o);
    assert!(lines.iter().any(|v| v["event"] == "corrupt_frame"), "{}", stdout(&o));
    let summary = lines.last().unwrap();
    assert!(summary["corrupt_frames"].as_u64().unwrap() >= 1);
    assert_eq!(summary["clean"], false);

    let o = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("[corrupt]"), "{}", stdout(&o));
    assert!(stderr(&o).contains("NOT CLEAN"), "{}", stderr(&o));
}

#[test]
fn truncated_trace_exits_3() {
    let bytes = sample::trace();
    let path = trace_file("truncated", &bytes[..bytes.len() - 5]);
    let o = run(&["decode", "--json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let lines = json_lines(&o);
    let tail = &lines[lines.len() - 2];
    assert_eq!(tail["event"], "truncated_tail");
    assert_eq!(lines.last().unwrap()["truncated_tail"], true);

    let o = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("[truncated]"));
    assert!(stderr(&o).contains("truncated tail yes"), "{}", stderr(&o));
}

#[test]
fn random_garbage_exits_3_without_panic() {
    let mut x = 0x1234_5678_9abc_def1u64;
    let bytes: Vec<u8> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = trace_file("garbage", &bytes);
    for json in [true, false] {
        let mut args = vec!["decode", path.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
        if json {
            json_lines(&o);
        }
    }
}

#[test]
fn tcp_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let bytes = sample::trace();
        // Send in pieces, as a UART would.
        for chunk in bytes.chunks(37) {
            sock.write_all(chunk).unwrap();
        }
    });
    let save = trace_file("tcp-save", b"");
    let o = run(&["decode", "--json", "--tcp", &addr.to_string(), "--save", save.to_str().unwrap()]);
    server.join().unwrap();
    assert_eq!(o.status.code(), Some(5), "stderr: {}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 17);
    assert_eq!(lines[15]["event"], "guest_exit");
    assert_eq!(lines[15]["reason"], "hyp_error");
    assert_eq!(std::fs::read(&save).unwrap(), sample::trace());
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = run(&["decode", "/nonexistent/porwatch/trace.bin"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("opening"), "{}", stderr(&o));
    let o = run(&["decode", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["decode", "x", "--tcp", "127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2), "FILE and --tcp conflict");
    let o = run(&["decode", "--tcp", "127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2), "connection refused");
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn system_map_symbols_with_automatic_kaslr_offset() {
    use porwatch_trace::{Event, Record};
    let kaslr = 0x2_0000u64;
    let recs = [
        Record {
            cpu: 0,
            seq: 0,
            ts: 0,
            event: Event::TapArm { vbar: 0xffff_8000_8001_0000 + kaslr, page: 0x4000_0000, mechanism: 0 },
        },
        Record {
            cpu: 0,
            seq: 1,
            ts: 1,
            event: Event::Trap { esr: 0x5a00_0000, elr: 0xffff_8000_8001_0884 + kaslr, outcome: 0 },
        },
        Record { cpu: 0, seq: 2, ts: 2, event: Event::Trap { esr: 0x5a00_0000, elr: 0x1234, outcome: 0 } },
    ];
    let trace = trace_file("sysmap", &sample::encode(&recs).unwrap());
    let map = trace_file(
        "System.map",
        b"ffff800080000000 T _text\nffff800080010000 T vectors\nffff800080010800 t el1h_64_irq\n\
          ffff800080011000 T _etext\n",
    );
    let o = run(&["decode", "--json", "--symbols", map.to_str().unwrap(), trace.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines[0]["vbar_sym"], "vectors+0x0/0x800");
    assert_eq!(lines[1]["elr_sym"], "el1h_64_irq+0x84/0x800");
    assert!(lines[2].get("elr_sym").is_none());
    assert!(stderr(&o).contains("KASLR offset 0x20000 (tap_arm vbar"), "{}", stderr(&o));

    // A given offset wins; text mode shows <sym> after the value.
    let o =
        run(&["decode", "--kaslr-offset", "0", "--symbols", map.to_str().unwrap(), trace.to_str().unwrap()]);
    assert!(stderr(&o).contains("KASLR offset 0x0 (--kaslr-offset)"), "{}", stderr(&o));
    assert!(!stdout(&o).contains('<'), "{}", stdout(&o));
    let o = run(&[
        "decode",
        "--kaslr-offset",
        "0x20000",
        "--symbols",
        map.to_str().unwrap(),
        trace.to_str().unwrap(),
    ]);
    assert!(stdout(&o).contains("elr=0xffff800080030884 <el1h_64_irq+0x84/0x800>"), "{}", stdout(&o));

    // Without hazards --fail-on-hazard changes nothing; bad symbol files exit 2.
    let o = run(&["decode", "--fail-on-hazard", trace.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let o = run(&["decode", "--symbols", trace.to_str().unwrap(), trace.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&["decode", "--kaslr-offset", "xyz", trace.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// A trace with two hazards (pkeys 1 and 2), a POR write and traps.
fn filter_trace() -> PathBuf {
    use porwatch_trace::{Event, Record};
    let hazard = |seq: u64, poindex: u64, pc: u64| Record {
        cpu: 0,
        seq,
        ts: seq,
        event: Event::Hazard {
            va: 0x8000 + seq,
            ipa: 0x9000 + seq,
            level: 3,
            half: 1,
            old: 0,
            new: 0,
            pc,
            por: 0x17,
            poindex,
            perm: 1,
            unprivileged: 0,
            entry_seq: 0,
            por_seq: 0,
            action: 0,
            leaf_level: 3,
            pir: 0,
            trace_seq: 0,
            entry_trace_seq: 0,
        },
    };
    let recs = [
        Record { cpu: 0, seq: 0, ts: 0, event: Event::Trap { esr: 0x5a00_0000, elr: 0x1004, outcome: 0 } },
        Record {
            cpu: 0,
            seq: 1,
            ts: 1,
            event: Event::PorWrite {
                pc: 0x2008,
                reg: 0,
                old: 0x57,
                new: 0x17,
                at_entry: 0,
                entry_seq: 0,
                sampled: 0,
            },
        },
        hazard(2, 1, 0x2010),
        Record { cpu: 0, seq: 3, ts: 3, event: Event::Trap { esr: 0x5a00_0000, elr: 0x3000, outcome: 0 } },
        hazard(4, 2, 0x1010),
    ];
    trace_file("filters", &sample::encode(&recs).unwrap())
}

fn seqs(o: &Output) -> Vec<u64> {
    json_lines(o).iter().filter_map(|l| l["seq"].as_u64()).collect()
}

#[test]
fn filters_select_records_and_summary_counts_all() {
    let trace = filter_trace();
    let t = trace.to_str().unwrap();
    let map = trace_file(
        "filters-map",
        b"0000000000001000 T alpha\n0000000000002000 T beta\n0000000000003000 T end\n",
    );
    let m = map.to_str().unwrap();
    let o = run(&["decode", "--json", "--kind", "trap,por_write", t]);
    assert_eq!(o.status.code(), Some(4), "hazards count though not shown: {}", stderr(&o));
    assert_eq!(seqs(&o), [0, 1, 3]);
    let summary = json_lines(&o).pop().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["records"], 5, "{summary}");
    assert_eq!(seqs(&run(&["decode", "--json", "--kind", "hazard", "--kind", "trap", t])), [0, 2, 3, 4]);
    assert_eq!(seqs(&run(&["decode", "--json", "--addr", "0x9004-0x9fff", t])), [4], "ipa");
    assert_eq!(seqs(&run(&["decode", "--json", "--addr", "2000-2fff", t])), [1, 2], "pc");
    assert_eq!(seqs(&run(&["decode", "--json", "--pkey", "2", t])), [4]);
    assert_eq!(
        seqs(&run(&["decode", "--json", "--symbols", m, "--kaslr-offset", "0", "--symbol", "alpha", t])),
        [0, 4]
    );
    assert_eq!(
        seqs(&run(&[
            "decode",
            "--json",
            "--symbols",
            m,
            "--kaslr-offset",
            "0",
            "--symbol",
            "beta",
            "--kind",
            "hazard",
            t
        ])),
        [2]
    );
    // Text mode: the hazard report goes with the hazard it belongs to.
    let o = run(&["decode", "--pkey", "1", t]);
    assert_eq!(stdout(&o).matches("porwatch: HAZARD:").count(), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("#2 hazard"), "{}", stdout(&o));
    assert!(stderr(&o).contains("5 records"), "{}", stderr(&o));
    // Usage errors exit 2.
    for bad in [&["--kind", "nope"][..], &["--addr", "0x10-0x1"], &["--addr", "zz"], &["--symbol", "alpha"]] {
        let mut args = vec!["decode"];
        args.extend_from_slice(bad);
        args.push(t);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
}

#[test]
fn perfetto_file_is_a_trace_event_object() {
    let trace = filter_trace();
    let out = trace.with_extension("perfetto.json");
    let o =
        run(&["decode", "--no-fail-on-hazard", "--perfetto", out.to_str().unwrap(), trace.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let evs = doc["traceEvents"].as_array().unwrap();
    assert_eq!(evs.iter().filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("hazard"))).count(), 2);
    assert_eq!(evs.iter().filter(|e| e["ph"] == "C" && e["args"]["cpu0 POR_EL1"] == 0x17).count(), 1);
    assert_eq!(evs.iter().filter(|e| e["ph"] == "i" && e["name"] == "trap").count(), 2);
}

#[test]
fn hidden_bench_trace_command_writes_a_clean_trace() {
    let path = trace_file("bench", b"");
    let o = run(&["bench-trace", "500", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o).lines().count(), 500);
    assert!(!stdout(&run(&["--help"])).contains("bench-trace"), "hidden");
}

#[test]
fn decode_exits_4_on_a_hazard_by_default_and_3_wins() {
    let t = filter_trace();
    let t = t.to_str().unwrap();
    assert_eq!(run(&["decode", t]).status.code(), Some(4));
    assert_eq!(run(&["decode", "--fail-on-hazard", t]).status.code(), Some(4), "no-op alias");
    assert_eq!(run(&["decode", "--no-fail-on-hazard", t]).status.code(), Some(0));
    let o = run(&["decode", "--fail-on-hazard", "--no-fail-on-hazard", t]);
    assert_eq!(o.status.code(), Some(2), "the two conflict");
    // A damaged trace with a hazard: 3 takes precedence.
    let mut bytes = std::fs::read(t).unwrap();
    bytes.truncate(bytes.len() - 3);
    let damaged = trace_file("hazard-truncated", &bytes);
    assert_eq!(run(&["decode", damaged.to_str().unwrap()]).status.code(), Some(3));
}

#[test]
fn follow_reads_a_file_appended_to_by_a_thread() {
    let bytes = sample::trace();
    let path = trace_file("follow", b"");
    let p = path.to_str().unwrap();
    let whole = trace_file("follow-whole", &bytes);
    let expected = run(&["decode", "--json", whole.to_str().unwrap()]);
    assert_eq!(expected.status.code(), Some(5), "the sample records a failed run");
    // The first third is there at start; a thread appends the rest in two
    // pieces (one cutting a frame), 300 ms apart.
    let (a, rest) = bytes.split_at(bytes.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    std::fs::write(&path, a).unwrap();
    let (b, c) = (b.to_vec(), c.to_vec());
    let appender_path = path.clone();
    let appender = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(appender_path).unwrap();
        for piece in [b, c] {
            std::thread::sleep(std::time::Duration::from_millis(300));
            f.write_all(&piece).unwrap();
            f.flush().unwrap();
        }
    });
    let start = std::time::Instant::now();
    let o = run(&["decode", "--json", "--follow", "--follow-timeout", "1", p]);
    appender.join().unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), stdout(&expected), "same records as the whole file");
    assert!(start.elapsed() >= std::time::Duration::from_millis(1500), "followed the appends, then 1 s");
    // --follow needs a file; --follow-timeout needs --follow.
    assert_eq!(run(&["decode", "--follow"]).status.code(), Some(2));
    assert_eq!(run(&["decode", "--follow-timeout", "1", p]).status.code(), Some(2));
    assert_eq!(run(&["decode", "--follow", "--follow-timeout", "x", p]).status.code(), Some(2));
}

#[test]
fn follow_stops_on_ctrl_c_and_prints_the_summary() {
    let path = trace_file("follow-int", &sample::trace());
    let child = Command::new(BIN)
        .args(["decode", "--json", "--follow", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signals our own child, which is still running (no timeout).
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.last().unwrap()["event"], "summary", "{}", stdout(&o));
}

#[test]
fn help_prints_the_exit_status_tables() {
    let o = run(&["run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for want in ["Exit status:", " 0-63  guest: ", "   64  guest_status_out_of_range: ", "  124  timeout: "] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    let out = stdout(&run(&["decode", "--help"]));
    assert!(out.contains("  5  the trace is intact but records a failed run"), "{out}");
}
