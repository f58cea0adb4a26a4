//! Store maintenance and time: `status`, `verify`, `rebuild`, `export`/`restore`, `--known-at`.

use serde_json::Value;

use crate::common::*;

#[test]
fn status_json_has_the_catalogue_fields() {
    let s = Store::seeded();
    let v = s.json(&["status"]);
    assert_eq!(v["events"], 17);
    assert_eq!(v["streams"], 15);
    assert_eq!(v["head_seq"], 17);
    assert_eq!(v["last_recorded_at"], "2024-01-21T09:00:00.000000Z");
    assert!(v["bytes_on_disk"].as_u64().unwrap() > 0);
    let views = v["views"].as_array().unwrap();
    let names: Vec<&str> = views.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["commitments", "calls", "documents", "sources"]);
    for x in views {
        for f in ["name", "version", "checkpoint", "lag", "digest"] {
            assert!(x.get(f).is_some(), "{f} missing");
        }
        assert_eq!(x["checkpoint"], 17);
        assert_eq!(x["lag"], 0);
    }
    let out = s.cmd().arg("status").output().unwrap();
    assert!(stdout(&out).contains("head seq:"));
}

#[test]
fn verify_passes_on_a_sound_store() {
    let s = Store::seeded();
    let out = s.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("17 events") && text.contains("view commitments"),
        "{text}"
    );
    let v = s.json(&["verify"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["first_bad_seq"], Value::Null);
    assert_eq!(v["views"].as_array().unwrap().len(), 4);
}

#[test]
fn rebuild_keeps_the_digests() {
    let s = Store::seeded();
    let before = s.json(&["status"]);
    let reports = s.json(&["rebuild"]);
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 4);
    for r in reports {
        assert_eq!(r["unchanged"], true, "{r}");
        assert_eq!(r["rows_changed"], 0);
        assert_eq!(r["checkpoint"], 17);
    }
    let after = s.json(&["status"]);
    for (a, b) in before["views"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["views"].as_array().unwrap())
    {
        assert_eq!(a["digest"], b["digest"]);
    }
    let out = s.cmd().args(["rebuild", "calls"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("calls") && text.contains("unchanged"),
        "{text}"
    );
    assert!(!text.contains("documents"));
    s.cmd().args(["rebuild", "nope"]).assert().code(2);
}

#[test]
fn export_restore_export_is_byte_identical() {
    let s = Store::seeded();
    let first = s.export();
    assert_eq!(first.iter().filter(|&&b| b == b'\n').count(), 17);
    let file = s.file("backup.jsonl", &first);
    let t = Store::new();
    let out = t.cmd().arg("restore").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("restored 17 events"));
    assert_eq!(t.export(), first);
    // The restored store answers reads like the original.
    assert_eq!(t.json(&["list"]), s.json(&["list"]));
    // export FILE writes the same bytes.
    let path = t.dir.path().join("again.jsonl");
    t.cmd().arg("export").arg(&path).assert().success();
    assert_eq!(std::fs::read(&path).unwrap(), first);
    // restore needs an empty store.
    let out = s.cmd().arg("restore").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty store"), "{}", stderr(&out));
    assert_eq!(s.export(), first);
}

#[test]
fn known_at_between_two_imports_shows_the_first_board() {
    let seed = std::fs::read_to_string(SEED).unwrap();
    let lines: Vec<&str> = seed.lines().collect();
    let stage1 = lines[..4].join("\n") + "\n";
    let stage2 = lines[4..].join("\n") + "\n";

    let s = Store::new();
    let f1 = s.file("stage1.jsonl", stage1.as_bytes());
    let f2 = s.file("stage2.jsonl", stage2.as_bytes());
    s.cmd_at("2024-01-21T09:00:00Z")
        .args(["-q", "import"])
        .arg(&f1)
        .assert()
        .success();
    s.cmd_at("2024-02-10T09:00:00Z")
        .args(["-q", "import"])
        .arg(&f2)
        .assert()
        .success();

    let only1 = Store::new();
    only1
        .cmd_at("2024-01-21T09:00:00Z")
        .args(["-q", "import"])
        .arg(&f1)
        .assert()
        .success();

    let at = ["--known-at", "2024-02-01", "--as-of", "2024-03-15"];
    let mut args = vec!["list"];
    args.extend(at);
    let past = s.json(&args);
    assert_eq!(past, only1.json(&args));
    let ids: Vec<&str> = past
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["commitment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bgd-political-consultations", "bgd-trade-commission"]);
    assert_eq!(past[0]["known_at"], "2024-02-01T23:59:59.999999Z");
    // At the tests' default COMMITMENTS_NOW (before the second import) the tracker knew only
    // the first stage; after both imports, everything.
    assert_eq!(s.json(&["list"]).as_array().unwrap().len(), 2);
    let later = s
        .cmd_at("2024-03-01T00:00:00Z")
        .args(["--json", "list"])
        .output()
        .unwrap();
    let later: serde_json::Value = serde_json::from_slice(&later.stdout).unwrap();
    assert_eq!(later.as_array().unwrap().len(), 6);
    // The other reads travel too.
    let mut args = vec!["calls"];
    args.extend(at);
    assert_eq!(s.json(&args).as_array().unwrap().len(), 1);
    let out = s
        .cmd()
        .args(["--json", "replay", "--known-at", "2024-02-01"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), 4);
    s.cmd()
        .args(["list", "--known-at", "soon"])
        .assert()
        .code(2);
}

/// Tampering with one stored byte (through sled, behind the tracker's back) makes `verify`
/// fail with exit 5, naming the first bad seq.
#[test]
fn verify_names_the_first_bad_seq_and_exits_5_after_tampering() {
    let s = Store::seeded();
    {
        let store =
            commitments_store::Store::open(&s.path, commitments_store::OpenOptions::default())
                .expect("open");
        let tree = store.debug_raw_tree();
        let (k, v) = tree
            .scan_prefix(b"P")
            .next()
            .expect("a pack")
            .expect("read");
        assert_eq!(v[0], 2, "packs are zstd-compressed");
        let raw_len = u32::from_be_bytes(v[5..9].try_into().expect("4 bytes")) as usize;
        let raw = zstd::bulk::decompress(&v[27..], raw_len).expect("decompress");
        // The same length, one letter changed: the pack still decodes, the chain does not.
        let at = raw
            .windows(6)
            .position(|w| w == b"Harare")
            .expect("Harare in the pack");
        let mut edited = raw.clone();
        edited[at + 5] = b'i';
        let mut nv = v[..27].to_vec();
        nv[0] = 0; // stored uncompressed
        nv[5..9].copy_from_slice(&(edited.len() as u32).to_be_bytes());
        nv.extend_from_slice(&edited);
        tree.insert(&k, nv).expect("tamper");
    }
    let out = s.cmd().arg("verify").output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "Harare" first appears in the Zimbabwe commitment (seq 14): its hash no longer matches the
    // next event's prev_hash.
    assert!(all.contains("seq 14") || all.contains("seq 15"), "{all}");
}
