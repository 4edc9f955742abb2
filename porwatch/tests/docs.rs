//! `docs/trace-format.md` and README.md stay in sync with the code: their
//! generated sections must equal what `porwatch::docgen` and
//! `porwatch::exit_status` produce now. To update them:
//! `PORWATCH_BLESS=1 cargo test -p porwatch --test docs`.

use std::path::PathBuf;
use std::sync::Mutex;

/// The tests run in parallel; blessing rewrites the whole file.
static DOC_LOCK: Mutex<()> = Mutex::new(());

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/trace-format.md")
}

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// Checks (or, with PORWATCH_BLESS=1, rewrites) the text between
/// `<!-- BEGIN GENERATED name -->` and `<!-- END GENERATED name -->` of
/// docs/trace-format.md.
fn check_section(name: &str, body: &str) {
    check_section_in(&doc_path(), name, body)
}

fn check_section_in(path: &std::path::Path, name: &str, body: &str) {
    let _guard = DOC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{} readable: {e}", path.display()));
    let begin = format!("<!-- BEGIN GENERATED {name} -->\n");
    let end = format!("<!-- END GENERATED {name} -->");
    let start = doc.find(&begin).unwrap_or_else(|| panic!("no `{begin}` marker")) + begin.len();
    let stop = start + doc[start..].find(&end).unwrap_or_else(|| panic!("no `{end}` marker"));
    let current = &doc[start..stop];
    if current == body {
        return;
    }
    if std::env::var_os("PORWATCH_BLESS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], body, &doc[stop..]);
        std::fs::write(path, updated).expect("docs writable");
        return;
    }
    panic!(
        "{} section `{name}` is out of date; run \
         `PORWATCH_BLESS=1 cargo test -p porwatch --test docs`. Expected:\n{body}",
        path.display()
    );
}

#[test]
fn records_tables_up_to_date() {
    check_section("records", &porwatch::docgen::records_markdown());
}

#[test]
fn json_example_up_to_date() {
    let json = porwatch::docgen::json_example();
    // Every line is valid JSON with the schema version.
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect(line);
        assert_eq!(v["v"], 1, "{line}");
    }
    check_section("json-example", &format!("```json\n{json}```\n"));
}

#[test]
fn text_example_up_to_date() {
    check_section("text-example", &format!("```text\n{}```\n", porwatch::docgen::text_example()));
}

#[test]
fn exit_status_tables_up_to_date() {
    check_section_in(&readme_path(), "run-exit-status", &porwatch::exit_status::run_table_markdown());
    check_section("decode-exit-status", &porwatch::exit_status::decode_table_markdown());
}
